"""The three values a black-box attack turned into 500s, placed in every field of every route's body.

JSON nested 100,000 deep (a RecursionError in the parser), an escaped lone surrogate ``\\ud800`` (a str
that has no UTF-8 form, so it failed later when written) and a 5,000-digit integer (past Python's
int-from-text limit). Each is sent as the value of every property the route's schema names, as an
object key, and as the whole body: the answer is a 4xx in the API's error shape and the bucket is
unchanged. Routes without a body get them in every path parameter and query parameter. The
hypothesis storm in test_http_routes draws the same values among its others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.functions.test_deploy_function import asset, manifest
from tests.fuzz.openapi import DEFINITIONS, HOSTILE_JSON, Operation
from tests.fuzz.test_http_routes import OPS, WS, Target, _error_shape_ok, internal_headers, target

__all__ = ["target"]

_MARKER = "__servo_hostile_marker__"


def _base_bodies(op: Operation, t: Target) -> list[dict[str, Any]]:
    """Bodies the route accepts, so the hostile value is the only thing wrong with each: one per form
    of the route's body (the logs callback takes a whole attempt's output or one streamed chunk)."""
    attempt = {"attempt": t.env["attempt"], "attemptId": t.env["attemptId"], "workerId": "w1"}
    by_operation: dict[str, dict[str, Any]] = {
        "deployManifest": manifest(asset("ns.a"), asset("ns.b", "ns.a"), asset("ns.c", "ns.b")),
        "triggerRun": {"selection": ["ns.a"], "runKey": "hostile", "labels": {"team": "data"}},
        "cancelRun": {"reason": "hostile"},
        "sweepTimers": {"tenantId": "default", "workspaceId": WS},
        "fireTimer": {
            "tenantId": "default",
            "workspaceId": WS,
            "timerId": f"timer:retry:{t.run_id}:ns.a:1:1800000005",
        },
    }
    name = op.operation_id.removesuffix("Compat")
    if name in by_operation:
        return [by_operation[name]]
    forms: dict[str, list[dict[str, Any]]] = {
        "taskCompleted": [{"outcome": "SUCCEEDED"}],
        "taskLogs": [{"stdout": "out", "stderr": ""}, {"seq": 0, "text": "out"}],
    }
    return [{**attempt, **form} for form in forms.get(name, [{}])]


def _properties(op: Operation) -> list[str]:
    """Every field the route's documented body names (the logs chunk's seq and text among them)."""
    assert op.body is not None
    schema = DEFINITIONS[op.body["$ref"].rsplit("/", 1)[-1]]
    return sorted(schema.get("properties", {}))


def _bodies(op: Operation, t: Target) -> list[tuple[str, bytes]]:
    """(label, raw body) for every placement of every hostile value."""
    found: list[tuple[str, bytes]] = []
    for kind, raw in HOSTILE_JSON.items():
        found.append((f"{kind} as the body", raw))
        for base in _base_bodies(op, t):
            for prop in _properties(op):
                for shape, value in (("value", _MARKER), ("key", {_MARKER: 1}), ("item", [_MARKER])):
                    text = json.dumps({**base, prop: value}).replace(f'"{_MARKER}"', raw.decode())
                    found.append((f"{kind} as {prop}'s {shape} in {sorted(base)}", text.encode()))
    return found


BODY_OPS = [op for op in OPS if op.body is not None]
READ_OPS = [op for op in OPS if op.body is None]
# The same three values where a read carries them: a path segment (a lone surrogate's UTF-8-like
# bytes, which are not UTF-8) and every query parameter.
HOSTILE_TEXT = {
    "deep nesting": "[" * 100_000,
    "lone surrogate": "%ED%A0%80",
    "huge integer": "9" * 5000,
}


@pytest.mark.parametrize("op", BODY_OPS, ids=[o.operation_id for o in BODY_OPS])
def test_deep_nesting_lone_surrogates_and_huge_integers_are_refused_on_every_route(
    target: Target, op: Operation, requests_sent: Callable[[int, str], None]
) -> None:
    path = op.template
    for name, value in {"ws": WS, "run_id": target.other_run_id, "task_id": target.env["taskId"]}.items():
        path = path.replace(f"{{{name}}}", value)
    headers = {"Content-Type": "application/json", **internal_headers(op, target)}
    if op.callback:
        headers["Authorization"] = f"Bearer {target.env['taskToken']}"
    bodies = _bodies(op, target)
    for label, raw in bodies:
        before = target.snapshot()
        res = target.client.open(path, method=op.method, data=raw, headers=headers)
        assert 400 <= res.status_code < 500, f"{label}: {res.status_code} {res.data[:300]!r}"
        assert _error_shape_ok(op, res.get_json(silent=True)), f"{label}: {res.data[:300]!r}"
        assert target.snapshot() == before, f"{label}: the refused request changed the bucket"
    requests_sent(len(bodies), f"hostile {op.operation_id}")


@pytest.mark.parametrize("op", READ_OPS, ids=[o.operation_id for o in READ_OPS])
def test_deep_nesting_lone_surrogates_and_huge_integers_are_refused_in_every_read(
    target: Target, op: Operation, requests_sent: Callable[[int, str], None]
) -> None:
    real = {"ws": WS, "run_id": target.run_id, "task_id": target.env["taskId"]}
    sent = 0
    for kind, text in HOSTILE_TEXT.items():
        for param in op.path_params:
            path = op.template
            for name, value in real.items():
                path = path.replace(f"{{{name}}}", text if name == param else value)
            res = target.client.get(path)
            sent += 1
            assert 400 <= res.status_code < 500, f"{kind} as {param}: {res.status_code} {res.data[:300]!r}"
            assert _error_shape_ok(op, res.get_json(silent=True)), f"{kind} as {param}: {res.data[:300]!r}"
        path = op.template
        for name, value in real.items():
            path = path.replace(f"{{{name}}}", value)
        for param in op.query:
            res = target.client.get(f"{path}?{param}={text}")
            sent += 1
            # A query value may be ignored (200) where it only narrows a read; it is never a 5xx.
            assert res.status_code < 500, f"{kind} as ?{param}: {res.status_code} {res.data[:300]!r}"
            if res.status_code >= 400:
                assert _error_shape_ok(op, res.get_json(silent=True)), f"?{param}: {res.data[:300]!r}"
    requests_sent(sent, f"hostile {op.operation_id}")


def test_the_logs_route_is_fuzzed_in_both_forms_and_every_field(target: Target) -> None:
    (logs,) = [op for op in BODY_OPS if op.operation_id == "taskLogs"]
    assert {"seq", "text", "stdout", "stderr", "attempt"} <= set(_properties(logs))
    labels = [label for label, _ in _bodies(logs, target)]
    chunk, whole = (
        ["attempt", "attemptId", "seq", "text", "workerId"],
        ["attempt", "attemptId", "stderr", "stdout", "workerId"],
    )
    assert any(label.endswith(f"as text's value in {chunk}") for label in labels)
    assert any(label.endswith(f"as seq's value in {whole}") for label in labels)
