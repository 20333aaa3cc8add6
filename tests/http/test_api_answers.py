"""Answers the document promises that schemathesis first found missing (issue 22), one test each.

Through the local router (every route, ``servo.dev.embedded.router_app``) and through a function's own
app (functions-framework), since a 405 is answered in two places: the route table (a known path, a
method it does not serve) and Flask (a method no rule takes, such as TRACE or OPTIONS).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from servo.dev.embedded import router_app
from servo.http.runtime import override_context
from servo.services.context import ServiceContext

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ctx(tmp_path: Path) -> ServiceContext:
    return make_context(tmp_path)[0]


@pytest.fixture
def client(ctx: ServiceContext) -> Any:
    return router_app(lambda: ctx).test_client()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/workspaces/prod/manifests", "POST"),
        ("PUT", "/v1/workspaces/prod/runs", "GET, POST"),
        ("GET", "/v1/tasks/ct1_x/heartbeat", "POST"),
        ("TRACE", "/v1/workspaces/prod/runs/r1", "GET"),
        ("OPTIONS", "/v1/workspaces/prod/runs/r1/cancel", "POST"),
    ],
)
def test_a_405_names_the_methods_the_route_table_serves(
    client: Any, method: str, path: str, allow: str
) -> None:
    res = client.open(path, method=method)
    assert res.status_code == 405
    assert res.headers["Allow"] == allow
    assert res.get_json()["code"] == "METHOD_NOT_ALLOWED"


@pytest.fixture
def deploy_client(ctx: ServiceContext) -> Iterator[Any]:
    with override_context(ctx):
        yield create_app("deploy", str(ROOT / "functions/deploy/main.py")).test_client()


def test_a_function_s_405_names_its_own_methods(deploy_client: Any) -> None:
    res = deploy_client.delete("/v1/workspaces/prod/manifests/current")
    assert res.status_code == 405 and res.headers["Allow"] == "GET"


@pytest.mark.parametrize("body", [b"\x00", b"{", b"[]", b'"x"'])
@pytest.mark.parametrize("action", ["started", "heartbeat", "completed", "logs"])
def test_a_callback_with_a_broken_body_answers_in_the_worker_protocol_shape(
    client: Any, action: str, body: bytes
) -> None:
    res = client.post(f"/v1/tasks/ct1_x/{action}", data=body, content_type="application/json")
    assert res.status_code == 400
    payload = res.get_json()
    assert payload["error"] == "invalid_argument" and payload["message"]
    assert "code" not in payload


@pytest.mark.parametrize("labels", [False, [], 0, ""])
def test_labels_of_the_wrong_type_are_400_even_when_falsy(
    client: Any, ctx: ServiceContext, labels: Any
) -> None:
    deployed = client.post("/v1/workspaces/prod/manifests", json=manifest(asset("ns.a")))
    assert deployed.status_code == 201
    res = client.post("/v1/workspaces/prod/runs", json={"selection": ["ns.a"], "labels": labels})
    assert res.status_code == 400 and "labels" in res.get_json()["message"]
    assert (
        client.post("/v1/workspaces/prod/runs", json={"selection": ["ns.a"], "labels": None}).status_code
        == 201
    )


def test_a_callback_ignores_the_tenant_header_since_its_token_names_the_tenant(client: Any) -> None:
    body = {"attempt": 1, "attemptId": "att", "workerId": "w1"}
    res = client.post("/v1/tasks/ct1_x/started", json=body, headers={"X-Servo-Tenant": "NOT A TENANT"})
    assert res.status_code == 401
    assert res.get_json()["error"] == "invalid_token"
