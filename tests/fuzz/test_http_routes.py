"""Property-based requests against every route of infra/openapi.yaml through the embedded router.

The router (``servo.dev.embedded.router_app``) serves every function's routes through the same
``servo.http.app.handle`` the deployed functions run. The workspace holds a deployed graph and a run
whose first task is RUNNING, and the generators know its real ids and task token, so requests get
past routing and authentication into each service's validation. For every request: never a 5xx;
an error is JSON with code+message (callbacks: error+message); and a rejected (4xx) request leaves
the bucket exactly as it was (every object's name, generation and size).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servo.dev.embedded import router_app
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.sensor_sweep import sweep_sensors
from servo.services.trigger import trigger_run
from servo.store import LocalFileStore

from tests.functions.test_deploy_function import asset, manifest
from tests.fuzz.openapi import BODY_TEXT, HEADER_TEXT, Operation, bodies, operations, path_value
from tests.support.context import make_context

WS = "prod"
OPS = operations()
EXAMPLES = 30


@dataclass
class Target:
    ctx: ServiceContext
    client: Any
    env: dict[str, Any]
    run_id: str  # the run whose first task is RUNNING (its token drives the callbacks)
    other_run_id: str  # a run the fuzzed cancels and reads may target
    evaluation: dict[str, Any]  # a requested sensor evaluation (its token drives the result route)

    def snapshot(self) -> list[tuple[str, int, int]]:
        return [(m.name, m.generation, m.size) for m in self.ctx.store.list("")]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("fuzz")
    base, _, queue = make_context(root)
    ctx = replace(base, store=LocalFileStore(root / base.settings.bucket, durable=False))
    body = manifest(asset("ns.a"), asset("ns.b", "ns.a"), asset("ns.c", "ns.b"))
    body["sensors"] = [
        {"id": "files", "kind": "POLL", "target": ["ns.a"], "defaultEnabled": True},
        {"id": "inbox", "kind": "PUSH", "target": ["ns.a"], "defaultEnabled": True},
    ]
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    # The poll sensor's first evaluation, requested after the deploy's commit (the sweep's, were it lost).
    sweep_sensors(ctx, "default", WS)
    (evaluation,) = [json.loads(t.body) for t in queue.take() if t.task_id.startswith("s_")]
    status, run = trigger_run(ctx, "default", WS, {"selection": ["ns.a"], "includeDownstream": True})
    assert status == 201
    (task,) = queue.take()
    status, other = trigger_run(ctx, "default", WS, {"selection": ["ns.c"]})
    assert status == 201
    env = json.loads(task.body)
    client = router_app(lambda: ctx).test_client()
    started = {"attempt": env["attempt"], "attemptId": env["attemptId"], "workerId": "w1"}
    auth = {"Authorization": f"Bearer {env['taskToken']}"}
    assert client.post(f"/v1/tasks/{env['taskId']}/started", json=started, headers=auth).status_code == 200
    yield Target(ctx, client, env, run["runId"], other["runId"], evaluation)


def _hints(t: Target) -> tuple[dict[str, st.SearchStrategy[Any]], dict[str, st.SearchStrategy[Any]]]:
    """(good, wild) values for the fields that gate deeper code: good ones are mostly real, wild ones
    are real or arbitrary text."""
    key = st.sampled_from(["ns.a", "ns.b", "ns.c", "ns.zz"])
    timer = f"timer:retry:{t.run_id}:ns.a:1:1800000005"
    good: dict[str, st.SearchStrategy[Any]] = {
        "selection": st.lists(key, min_size=1, max_size=3),
        "attempt": st.sampled_from([t.env["attempt"]] * 3 + [2]),
        "attemptId": st.sampled_from([t.env["attemptId"]] * 3 + ["att_000000000000000000000000"]),
        "workerId": st.just("w1"),
        "tenantId": st.sampled_from(["default", "acme"]),
        "workspaceId": st.sampled_from([WS, "other"]),
        "timerId": st.sampled_from([timer, "timer:cron:nightly:1800000005"]),
        "key": st.fixed_dictionaries({"namespace": st.just("ns"), "name": st.sampled_from(["a", "b", "d"])}),
        "id": st.sampled_from(["id-1", "id-2"]),
        "dependencies": st.lists(st.fixed_dictionaries({"upstreamKey": key}), max_size=2),
        "manifestVersion": st.just("1.0"),
        "codeVersionId": st.sampled_from(["cv1", "cv2"]),
        "runKey": st.sampled_from(["fuzz-key", "fuzz-key-2"]),
        "assets": st.lists(key, min_size=1, max_size=2),
        "partitions": st.sampled_from(
            [
                {"range": {"start": "2025-01-01", "end": "2025-01-03"}},
                {"range": {"start": "2025-01-03", "end": "2025-01-01"}},
                {"explicit": []},
                {"explicit": ["date=d:2025-01-01"]},
            ]
        ),
        "expectedStateVersion": st.integers(0, 3),
        "message": st.fixed_dictionaries(
            {
                "messageId": st.sampled_from(["m1", "m2", "bad id"]),
                "data": st.sampled_from(["aGk=", "", "!!"]),
            },
            optional={
                "attributes": st.dictionaries(st.sampled_from(["k", ""]), st.text(max_size=3), max_size=2)
            },
        ),
        "status": st.sampled_from(["TRIGGERED", "SKIPPED", "ERROR"]),
        "runRequests": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "runKey": st.sampled_from(["k1", "k2"]),
                    "assetSelection": st.lists(key, max_size=2),
                },
            ),
            max_size=2,
        ),
    }
    wild = {name: value | BODY_TEXT for name, value in good.items()}
    return good, wild


def internal_headers(op: Operation, t: Target) -> dict[str, str]:
    """The internal credential an internal route needs, so a request gets past it into the service."""
    return {"X-Servo-Dispatch-Secret": t.ctx.settings.dispatch_secret} if op.internal else {}


def _headers(op: Operation, t: Target) -> st.SearchStrategy[dict[str, str]]:
    token = (
        t.evaluation["evaluationToken"] if op.operation_id == "reportSensorEvaluation" else t.env["taskToken"]
    )
    bearer = f"Bearer {token}"
    auth = st.sampled_from([bearer] * 4 + [bearer[:-3] + "AAA", "Bearer ", "Basic eA=="]) | HEADER_TEXT
    optional = {
        "X-Servo-Tenant": st.sampled_from(["default", "acme", "UPPER", "../x", "_servo"]) | HEADER_TEXT,
        "Idempotency-Key": st.sampled_from(["fuzz-key", "k" * 300]) | HEADER_TEXT,
        "traceparent": st.sampled_from(["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"])
        | HEADER_TEXT,
        "X-Request-Id": HEADER_TEXT,
    }
    # A callback carries a (mostly real) task token, so its checks past authentication are reached.
    # Mostly JSON, so the local server's media-type check lets most requests through to the service.
    content_type = st.sampled_from(
        ["application/json"] * 6 + ["text/plain", "application/x-www-form-urlencoded", ""]
    )
    required = (
        {"Authorization": auth, "Content-Type": content_type}
        if op.callback
        else {"Content-Type": content_type}
    )
    if op.internal:
        secret = internal_headers(op, t)["X-Servo-Dispatch-Secret"]
        required["X-Servo-Dispatch-Secret"] = st.sampled_from([secret] * 4 + ["", secret[:-1]])
    if not op.callback:
        optional["Authorization"] = auth
    return st.fixed_dictionaries(required, optional=optional)


def _path(op: Operation, t: Target, data: st.DataObject) -> str:
    real = {
        "ws": st.sampled_from([WS, "other", "default"]),
        "run_id": st.sampled_from([t.other_run_id, "01ARZ3NDEKTSV4RRFFQ69G5FAV"]),
        "task_id": st.sampled_from([t.env["taskId"], "ns.a", "ns.b"]),
        "schedule_id": st.sampled_from(["every", "nope"]),
        "asset_key": st.sampled_from(["ns.a", "ns/b", "ns.nope"]),
        "tick_id": st.sampled_from(["every:1800000000", "nope:1", "every:x"]),
        "backfill_id": st.sampled_from(["bf_" + "a" * 26, "bf_x", "nope"]),
        "sensor_id": st.sampled_from(["files", "inbox", "nope"]),
        "evaluation_id": st.sampled_from(
            [t.evaluation["evaluationId"], "files:v0:9", "files:manual:k", "x:y"]
        ),
    }
    path = op.template
    for name in op.path_params:
        path = path.replace(f"{{{name}}}", data.draw(path_value(real[name]), label=name))
    return path


def _query(op: Operation, data: st.DataObject) -> dict[str, str]:
    query = {}
    for name, spec in op.query.items():
        value: st.SearchStrategy[str] = HEADER_TEXT
        if spec.get("type") == "integer":
            value = st.integers(-5, 500).map(str) | value
        if "enum" in spec:
            value = st.sampled_from(spec["enum"]) | value
        if data.draw(st.booleans(), label=f"has {name}"):
            query[name] = data.draw(value, label=name)
    return query


def _error_shape_ok(op: Operation, body: Any) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("message"), str) or not body["message"]:
        return False
    return isinstance(body.get("code"), str) or (op.callback and isinstance(body.get("error"), str))


@pytest.mark.parametrize("op", OPS, ids=[o.operation_id for o in OPS])
def test_fuzzed_requests_never_fail_the_server_and_rejections_change_nothing(
    target: Target, op: Operation, requests_sent: Callable[[int, str], None]
) -> None:
    sent = 0
    methods = st.sampled_from([op.method] * 16 + ["GET", "POST", "PUT", "DELETE", "PATCH"])

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def one_request(data: st.DataObject) -> None:
        nonlocal sent
        method = data.draw(methods, label="method")
        path = _path(op, target, data)
        body = (
            data.draw(bodies(op, *_hints(target)), label="body")
            if method in ("POST", "PUT", "PATCH")
            else b""
        )
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = data.draw(_headers(op, target), label="headers")
        before = target.snapshot()
        res = target.client.open(
            path, method=method, data=raw, headers=headers, query_string=_query(op, data)
        )
        sent += 1
        assert res.status_code < 500, f"{method} {path} -> {res.status_code} {res.data[:300]!r}"
        if res.status_code >= 400:
            payload = res.get_json(silent=True)
            assert _error_shape_ok(op, payload), f"{method} {path} -> {res.status_code} {res.data[:300]!r}"
            assert target.snapshot() == before, (
                f"rejected {method} {path} ({res.status_code}) changed the bucket"
            )
        elif res.mimetype == "application/json":
            assert res.get_json(silent=True) is not None

    one_request()
    requests_sent(sent, op.operation_id)
    # The storm wedged nothing: the run still reads back.
    assert target.client.get(f"/v1/workspaces/{WS}/runs/{target.run_id}").status_code == 200


def test_every_route_of_the_openapi_document_is_fuzzed() -> None:
    from servo.http.routes import ROUTES

    assert {(o.method, o.template) for o in OPS} == {(r.method, r.template) for r in ROUTES}


@pytest.mark.parametrize("function", ["router", "runs"])
def test_a_newline_in_a_path_segment_is_a_json_error(target: Target, function: str) -> None:
    from functions_framework import create_app

    from tests.faults.harness import ROOT

    client = (
        target.client
        if function == "router"
        else create_app(function, str(ROOT / f"functions/{function}/main.py")).test_client()
    )
    res = client.get(f"/v1/workspaces/{WS}/runs/%0A")
    assert res.status_code == 404
    assert _error_shape_ok(OPS[0], res.get_json(silent=True)), res.data[:200]
