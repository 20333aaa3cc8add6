"""infra/openapi.yaml is valid Swagger 2.0 and every route names an existing function."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.validators import OpenAPIV2SpecValidator

from tests.infra.conftest import EXPECTED_FUNCTIONS, ROOT, function_folders, openapi_template_vars

METHODS = ("get", "post", "put", "patch", "delete")


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, op) for path, ops in doc["paths"].items() for m, op in ops.items() if m in METHODS]


def test_document_validates_as_swagger_2_after_substitution(openapi: dict[str, Any]) -> None:
    assert openapi["swagger"] == "2.0"
    validate(openapi, cls=OpenAPIV2SpecValidator)


def test_template_variables_are_the_ones_terraform_supplies() -> None:
    text = (ROOT / "infra" / "openapi.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{(\w+)\}", text))
    assert used == set(openapi_template_vars())


def test_every_operation_names_a_function_and_an_operation_id(openapi: dict[str, Any]) -> None:
    ids = []
    for path, method, op in _operations(openapi):
        fn = op.get("x-servo-function")
        assert fn in EXPECTED_FUNCTIONS or fn in function_folders(), (path, method, fn)
        assert op.get("operationId"), (path, method)
        ids.append(op["operationId"])
        backend = op["x-google-backend"]
        assert (
            backend["address"].startswith("https://")
            and backend["path_translation"] == "APPEND_PATH_TO_ADDRESS"
        )
    assert len(ids) == len(set(ids))


def test_backend_address_is_the_template_variable_of_its_function() -> None:
    raw = yaml_raw()
    for path, method, op in _operations(raw):
        assert op["x-google-backend"]["address"] == f"${{{op['x-servo-function']}_url}}", (path, method)


def yaml_raw() -> dict[str, Any]:
    import yaml

    doc: dict[str, Any] = yaml.safe_load((ROOT / "infra" / "openapi.yaml").read_text())
    return doc


def test_path_parameters_are_declared(openapi: dict[str, Any]) -> None:
    shared = openapi.get("parameters", {})
    for path, method, op in _operations(openapi):
        declared = set()
        for param in op.get("parameters", []):
            resolved = shared[param["$ref"].rsplit("/", 1)[1]] if "$ref" in param else param
            if resolved["in"] == "path":
                assert resolved["required"] is True
                declared.add(resolved["name"])
        assert declared == set(re.findall(r"\{(\w+)\}", path)), (path, method)


def test_every_response_has_a_schema_and_errors_use_the_error_bodies(openapi: dict[str, Any]) -> None:
    shared = openapi["responses"]
    for path, method, op in _operations(openapi):
        assert any(code.startswith("2") for code in op["responses"]), (path, method)
        for code, response in op["responses"].items():
            resolved = shared[response["$ref"].rsplit("/", 1)[1]] if "$ref" in response else response
            assert "schema" in resolved, (path, method, code)
            if code.startswith(("4", "5")):
                ref = resolved["schema"]["$ref"]
                # A callback's own refusals keep the worker-protocol shape; what is answered before the
                # callback runs (size, media type, cross-site, capacity) and 500 use the API's.
                callback_own = code in ("400", "401", "404", "409", "410")
                expected = (
                    "CallbackError" if op["x-servo-function"] == "callback" and callback_own else "Error"
                )
                assert ref == f"#/definitions/{expected}", (path, method, code)
        body = [p for p in op.get("parameters", []) if p.get("in") == "body"]
        if method == "post" and op["x-servo-function"] != "timers":
            assert body and "$ref" in body[0]["schema"], (path, method)


def test_error_bodies_match_design(openapi: dict[str, Any]) -> None:
    error = openapi["definitions"]["Error"]
    assert set(error["required"]) == {"code", "message", "correlationId"}
    assert "details" in error["properties"]
    callback = openapi["definitions"]["CallbackError"]
    assert set(callback["required"]) == {"error", "message"}
    assert {"state", "expectedAttempt", "receivedAttempt", "expectedAttemptId", "receivedAttemptId"} <= set(
        callback["properties"]
    )


def test_google_id_token_security(openapi: dict[str, Any]) -> None:
    scheme = openapi["securityDefinitions"]["google_id_token"]
    assert {"x-google-issuer", "x-google-jwks_uri", "x-google-audiences"} <= scheme.keys()
    assert openapi["security"] == [{"google_id_token": []}]
    for path, method, op in _operations(openapi):
        if op["x-servo-function"] == "callback":
            # Workers authenticate with their per-attempt task token, checked by the function.
            assert op["security"] == [], (path, method)
        else:
            assert "security" not in op, (path, method)


def test_internal_routes_are_exactly_the_timers_and_the_sensor_push(openapi: dict[str, Any]) -> None:
    # Cloud Scheduler and Cloud Tasks call timers directly; a Pub/Sub push subscription calls the
    # automation function directly with its OIDC token (automation §9: the push route skips the gateway,
    # where every caller would be refused 401).
    internal = {(p, m) for p, m, op in _operations(openapi) if op.get("x-servo-internal")}
    assert internal == {
        ("/v1/timers/sweep", "post"),
        ("/v1/timers/fire", "post"),
        ("/v1/workspaces/{ws}/sensors/{sensor_id}/push", "post"),
    }


def test_design_routes_are_all_present(openapi: dict[str, Any]) -> None:
    got = {(m.upper(), p, op["x-servo-function"]) for p, m, op in _operations(openapi)}
    want = {
        ("POST", "/v1/workspaces/{ws}/manifests", "deploy"),
        ("GET", "/v1/workspaces/{ws}/manifests/current", "deploy"),
        ("POST", "/v1/workspaces/{ws}/runs", "trigger"),
        ("GET", "/v1/workspaces/{ws}/runs", "runs"),
        ("GET", "/v1/workspaces/{ws}/runs/{run_id}", "runs"),
        ("GET", "/v1/workspaces/{ws}/runs/{run_id}/logs", "runs"),
        ("POST", "/v1/workspaces/{ws}/runs/{run_id}/cancel", "cancel"),
        ("POST", "/v1/workspaces/{ws}/runs/{run_id}/rerun", "trigger"),
        ("POST", "/v1/timers/sweep", "timers"),
        ("POST", "/v1/timers/fire", "timers"),
    } | {
        ("POST", f"{prefix}/tasks/{{task_id}}/{action}", "callback")
        for prefix in ("/v1", "/api/v1")
        for action in ("started", "heartbeat", "completed", "logs")
    }
    schedule_routes = ("", "/{schedule_id}", "/{schedule_id}/enable", "/{schedule_id}/disable")
    schedule_routes += ("/{schedule_id}/ticks", "/{schedule_id}/ticks/{tick_id}")
    want |= {
        ("POST" if tail.endswith("able") else "GET", f"/v1/workspaces/{{ws}}/schedules{tail}", "automation")
        for tail in schedule_routes
    }
    sensor_routes = (
        "",
        "/{sensor_id}",
        "/{sensor_id}/enable",
        "/{sensor_id}/disable",
        "/{sensor_id}/evaluate",
    )
    sensor_routes += (
        "/{sensor_id}/push",
        "/{sensor_id}/evaluations",
        "/{sensor_id}/evaluations/{evaluation_id}",
    )
    want |= {
        (
            "POST" if tail.endswith(("able", "evaluate", "push")) else "GET",
            f"/v1/workspaces/{{ws}}/sensors{tail}",
            "automation",
        )
        for tail in sensor_routes
    }
    want.add(("POST", "/v1/sensor-evaluations/{evaluation_id}/result", "callback"))
    assets = "/v1/workspaces/{ws}/assets"
    want |= {
        ("GET", f"{assets}{tail}", "automation") for tail in ("", "/{asset_key}", "/{asset_key}/partitions")
    }
    backfill = "/v1/workspaces/{ws}/backfills"
    want |= {("POST", backfill, "automation"), ("GET", backfill, "automation")}
    want |= {("GET", f"{backfill}/{{backfill_id}}{tail}", "automation") for tail in ("", "/chunks")}
    want |= {
        ("POST", f"{backfill}/{{backfill_id}}/{action}", "automation")
        for action in ("pause", "resume", "cancel", "retry-failed")
    }
    assert got == want


@pytest.mark.parametrize("fn", sorted({"deploy", "trigger", "runs", "cancel", "callback", "timers"}))
def test_each_http_function_serves_at_least_one_route(openapi: dict[str, Any], fn: str) -> None:
    assert any(op["x-servo-function"] == fn for _, _, op in _operations(openapi))
