"""Worker-protocol messages (contracts §10): golden fixtures parse, re-render, and bad input is rejected."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from servo.core.errors import InvalidMessage
from servo.core.protocol import (
    CallbackError,
    CompletedRequest,
    CompletedResponse,
    DispatchEnvelope,
    HeartbeatRequest,
    HeartbeatResponse,
    StartedRequest,
    StartedResponse,
    TaskError,
    TaskMetrics,
    TaskOutput,
)

from tests.conftest import FIXTURES, load_fixture

WP = "worker_protocol/"
CAMEL_FIXTURES = {
    "worker_dispatch_envelope.json": DispatchEnvelope,
    "task_started_request.json": StartedRequest,
    "heartbeat_request.json": HeartbeatRequest,
    "heartbeat_response.json": HeartbeatResponse,
    "task_completed_request.json": CompletedRequest,
    "callback_error_payload.json": CallbackError,
}


def test_every_fixture_file_is_covered() -> None:
    files = {p.name for p in (FIXTURES / "worker_protocol").glob("*.json")}
    assert files == set(CAMEL_FIXTURES) | {"worker_dispatch_envelope_legacy_snake_case.json"}


@pytest.mark.parametrize("name", sorted(CAMEL_FIXTURES))
def test_camel_fixture_round_trips(name: str) -> None:
    raw = load_fixture(WP + name)
    message = CAMEL_FIXTURES[name].from_json(raw)  # type: ignore[attr-defined]
    rendered = message.to_json()
    assert rendered == raw
    assert json.loads(json.dumps(rendered)) == raw


def test_envelope_renders_in_contract_key_order() -> None:
    raw = load_fixture(WP + "worker_dispatch_envelope.json")
    rendered = DispatchEnvelope.from_json(raw).to_json()
    assert list(rendered) == list(raw)
    assert list(rendered) == [
        "tenantId", "workspaceId", "taskId", "taskKey", "runId", "attempt", "attemptId", "dispatchId",
        "executionLocationId", "partitionKey", "heartbeatTimeoutSec", "workerQueue", "callbackBaseUrl",
        "taskToken", "tokenExpiresAt", "traceparent", "payload",
    ]  # fmt: skip


def test_envelope_fields_are_typed() -> None:
    env = DispatchEnvelope.from_json(load_fixture(WP + "worker_dispatch_envelope.json"))
    assert env.task_id == "ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM"
    assert env.attempt == 1
    assert env.heartbeat_timeout_sec == 300
    assert env.token_expires_at_ms == 1_767_225_600_000
    assert env.payload == {"partition": "date=2026-01-01"}


def test_legacy_snake_case_envelope_defaults_task_id_to_task_key() -> None:
    raw = load_fixture(WP + "worker_dispatch_envelope_legacy_snake_case.json")
    env = DispatchEnvelope.from_json(raw)
    assert env.task_id == "analytics.daily_sales" == env.task_key
    assert env.run_id == "run-123"
    assert env.execution_location_id == "local-dev"
    assert env.partition_key is None and env.heartbeat_timeout_sec is None
    rendered = env.to_json()
    assert "tenant_id" not in rendered
    assert rendered["taskId"] == "analytics.daily_sales"
    assert rendered["callbackBaseUrl"] == "https://callbacks.example"


def test_legacy_callback_task_id_alias() -> None:
    raw = load_fixture(WP + "worker_dispatch_envelope_legacy_snake_case.json")
    raw["callbackTaskId"] = "ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM"
    assert DispatchEnvelope.from_json(raw).task_id == raw["callbackTaskId"]


def test_envelope_payload_defaults_to_empty_object() -> None:
    raw = load_fixture(WP + "worker_dispatch_envelope.json")
    del raw["payload"]
    env = DispatchEnvelope.from_json(raw)
    assert env.payload == {}
    assert env.to_json()["payload"] == {}


def test_completed_request_parts_are_typed() -> None:
    req = CompletedRequest.from_json(load_fixture(WP + "task_completed_request.json"))
    assert req.outcome == "FAILED"
    assert req.completed_at_ms == 1_767_225_610_000
    assert req.error == TaskError(
        category="INFRASTRUCTURE", message="transient object storage failure", retryable=True
    )
    assert req.metrics == TaskMetrics(
        cpu_time_ms=12, peak_memory_bytes=4096, io_read_bytes=1024, io_write_bytes=2048
    )
    assert req.output is None


@pytest.mark.parametrize(
    "category, default",
    [
        ("USER_CODE", True),
        ("INFRASTRUCTURE", True),
        ("TIMEOUT", True),
        ("DATA_QUALITY", False),
        ("CONFIGURATION", False),
        ("CANCELLED", False),
    ],
)
def test_missing_retryable_is_filled_with_category_default(category: str, default: bool) -> None:
    error = TaskError.from_json({"category": category, "message": "boom"})
    assert error.retryable is default
    assert error.to_json() == {"category": category, "message": "boom", "retryable": default}
    assert TaskError.from_json(
        {"category": category, "message": "m", "retryable": not default}
    ).retryable is (not default)


def test_result_is_an_alias_of_output_and_snake_aliases_work() -> None:
    req = CompletedRequest.from_json(
        {
            "attempt": 2,
            "attempt_id": "att-9",
            "worker_id": "w",
            "outcome": "SUCCEEDED",
            "completed_at": "2026-01-01T00:00:10.123Z",
            "result": {
                "materialization_id": "m-1",
                "row_count": 10,
                "delta_version": 7,
                "output_visibility_state": "VISIBLE",
                "published_at": "2026-01-01T00:00:09Z",
            },
            "cancelled_during_phase": "write",
            "partial_progress": {"rows": [1, 2]},
        }
    )
    assert req.output == TaskOutput(
        materialization_id="m-1",
        row_count=10,
        delta_version=7,
        output_visibility_state="VISIBLE",
        published_at_ms=1_767_225_609_000,
    )
    assert req.partial_progress == {"rows": [1, 2]}
    assert req.to_json() == {
        "attempt": 2,
        "attemptId": "att-9",
        "workerId": "w",
        "outcome": "SUCCEEDED",
        "completedAt": "2026-01-01T00:00:10.123Z",
        "output": {
            "materializationId": "m-1",
            "rowCount": 10,
            "deltaVersion": 7,
            "outputVisibilityState": "VISIBLE",
            "publishedAt": "2026-01-01T00:00:09Z",
        },
        "cancelledDuringPhase": "write",
        "partialProgress": {"rows": [1, 2]},
    }


def test_attempt_zero_is_parsed_for_the_callback_check() -> None:
    raw = load_fixture(WP + "task_started_request.json")
    raw["attempt"] = 0
    assert StartedRequest.from_json(raw).attempt == 0


def test_progress_pct_bounds() -> None:
    raw = load_fixture(WP + "heartbeat_request.json")
    for pct in (0, 100):
        raw["progressPct"] = pct
        assert HeartbeatRequest.from_json(raw).progress_pct == pct
    raw["progressPct"] = 101
    with pytest.raises(InvalidMessage, match="progressPct"):
        HeartbeatRequest.from_json(raw)


def test_responses_render_camel_case() -> None:
    assert StartedResponse(acknowledged=True, server_time_ms=1_767_225_601_000).to_json() == {
        "acknowledged": True,
        "serverTime": "2026-01-01T00:00:01Z",
    }
    assert HeartbeatResponse(
        acknowledged=True, should_cancel=True, server_time_ms=0, cancel_reason="user_requested"
    ).to_json() == {
        "acknowledged": True,
        "shouldCancel": True,
        "cancelReason": "user_requested",
        "serverTime": "1970-01-01T00:00:00Z",
    }
    resp = CompletedResponse(acknowledged=True, final_state="FAILED", server_time_ms=1)
    assert resp.to_json() == {
        "acknowledged": True,
        "finalState": "FAILED",
        "serverTime": "1970-01-01T00:00:00.001Z",
    }
    assert CompletedResponse.from_json(resp.to_json()) == resp
    assert StartedResponse.from_json(
        {"acknowledged": True, "server_time": "1970-01-01T00:00:00Z"}
    ).acknowledged


def test_callback_error_omits_absent_fields() -> None:
    err = CallbackError(error="task_not_found", message="no such task")
    assert err.to_json() == {"error": "task_not_found", "message": "no such task"}


def test_conflicting_camel_and_snake_values_rejected() -> None:
    raw = load_fixture(WP + "task_started_request.json")
    raw["attempt_id"] = "att-other"
    with pytest.raises(InvalidMessage, match="attemptId"):
        StartedRequest.from_json(raw)


def test_non_object_rejected() -> None:
    with pytest.raises(InvalidMessage):
        StartedRequest.from_json([])  # type: ignore[arg-type]


def _without(obj: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    del out[key]
    return out


def _with(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    target = out
    *parents, last = path.split(".")
    for part in parents:
        target = target[part]
    target[last] = value
    return out


ENV = load_fixture(WP + "worker_dispatch_envelope.json")
STARTED = load_fixture(WP + "task_started_request.json")
HEARTBEAT = load_fixture(WP + "heartbeat_request.json")
HB_RESP = load_fixture(WP + "heartbeat_response.json")
COMPLETED = load_fixture(WP + "task_completed_request.json")
CB_ERR = load_fixture(WP + "callback_error_payload.json")

MALFORMED: list[tuple[str, type, dict[str, Any], str]] = [
    *[
        (f"envelope missing {k}", DispatchEnvelope, _without(ENV, k), k)
        for k in (
            "tenantId",
            "workspaceId",
            "taskKey",
            "runId",
            "attempt",
            "attemptId",
            "dispatchId",
            "workerQueue",
            "callbackBaseUrl",
            "taskToken",
            "tokenExpiresAt",
        )
    ],
    ("envelope attempt str", DispatchEnvelope, _with(ENV, "attempt", "1"), "attempt"),
    ("envelope attempt bool", DispatchEnvelope, _with(ENV, "attempt", True), "attempt"),
    ("envelope attempt float", DispatchEnvelope, _with(ENV, "attempt", 1.0), "attempt"),
    ("envelope attempt negative", DispatchEnvelope, _with(ENV, "attempt", -1), "attempt"),
    ("envelope attempt zero", DispatchEnvelope, _with(ENV, "attempt", 0), "attempt"),
    ("envelope tenant int", DispatchEnvelope, _with(ENV, "tenantId", 5), "tenantId"),
    ("envelope tenant empty", DispatchEnvelope, _with(ENV, "tenantId", ""), "tenantId"),
    (
        "envelope heartbeat str",
        DispatchEnvelope,
        _with(ENV, "heartbeatTimeoutSec", "300"),
        "heartbeatTimeoutSec",
    ),
    (
        "envelope heartbeat zero",
        DispatchEnvelope,
        _with(ENV, "heartbeatTimeoutSec", 0),
        "heartbeatTimeoutSec",
    ),
    ("envelope bad expiry", DispatchEnvelope, _with(ENV, "tokenExpiresAt", "tomorrow"), "tokenExpiresAt"),
    ("envelope payload list", DispatchEnvelope, _with(ENV, "payload", []), "payload"),
    ("envelope traceparent int", DispatchEnvelope, _with(ENV, "traceparent", 1), "traceparent"),
    *[
        (f"started missing {k}", StartedRequest, _without(STARTED, k), k)
        for k in ("attempt", "attemptId", "workerId")
    ],
    ("started negative attempt", StartedRequest, _with(STARTED, "attempt", -1), "attempt"),
    ("started attempt null", StartedRequest, _with(STARTED, "attempt", None), "attempt"),
    (
        "started bad startedAt",
        StartedRequest,
        _with(STARTED, "startedAt", "2026-01-01 00:00:01"),
        "startedAt",
    ),
    *[
        (f"heartbeat missing {k}", HeartbeatRequest, _without(HEARTBEAT, k), k)
        for k in ("attempt", "attemptId", "workerId")
    ],
    ("heartbeat pct 101", HeartbeatRequest, _with(HEARTBEAT, "progressPct", 101), "progressPct"),
    ("heartbeat pct -1", HeartbeatRequest, _with(HEARTBEAT, "progressPct", -1), "progressPct"),
    ("heartbeat pct float", HeartbeatRequest, _with(HEARTBEAT, "progressPct", 45.5), "progressPct"),
    ("heartbeat message int", HeartbeatRequest, _with(HEARTBEAT, "message", 3), "message"),
    ("heartbeat bad heartbeatAt", HeartbeatRequest, _with(HEARTBEAT, "heartbeatAt", 12), "heartbeatAt"),
    (
        "hb response missing shouldCancel",
        HeartbeatResponse,
        _without(HB_RESP, "shouldCancel"),
        "shouldCancel",
    ),
    (
        "hb response shouldCancel str",
        HeartbeatResponse,
        _with(HB_RESP, "shouldCancel", "false"),
        "shouldCancel",
    ),
    *[
        (f"completed missing {k}", CompletedRequest, _without(COMPLETED, k), k)
        for k in ("attempt", "attemptId", "workerId", "outcome")
    ],
    ("completed bad outcome", CompletedRequest, _with(COMPLETED, "outcome", "SKIPPED"), "outcome"),
    ("completed lower outcome", CompletedRequest, _with(COMPLETED, "outcome", "failed"), "outcome"),
    ("completed negative attempt", CompletedRequest, _with(COMPLETED, "attempt", -3), "attempt"),
    (
        "completed bad category",
        CompletedRequest,
        _with(COMPLETED, "error.category", "OOPS"),
        "error.category",
    ),
    (
        "completed error no category",
        CompletedRequest,
        _with(COMPLETED, "error", {"message": "m"}),
        "error.category",
    ),
    (
        "completed error no message",
        CompletedRequest,
        _with(COMPLETED, "error", {"category": "TIMEOUT"}),
        "error.message",
    ),
    (
        "completed retryable str",
        CompletedRequest,
        _with(COMPLETED, "error.retryable", "yes"),
        "error.retryable",
    ),
    ("completed error list", CompletedRequest, _with(COMPLETED, "error", []), "error"),
    (
        "completed metrics negative",
        CompletedRequest,
        _with(COMPLETED, "metrics.cpuTimeMs", -1),
        "metrics.cpuTimeMs",
    ),
    (
        "completed metrics str",
        CompletedRequest,
        _with(COMPLETED, "metrics.ioReadBytes", "1"),
        "metrics.ioReadBytes",
    ),
    (
        "completed output rowCount str",
        CompletedRequest,
        _with(COMPLETED, "output", {"rowCount": "3"}),
        "output.rowCount",
    ),
    (
        "completed bad visibility",
        CompletedRequest,
        _with(COMPLETED, "output", {"outputVisibilityState": "DONE"}),
        "output.outputVisibilityState",
    ),
    ("callback error missing error", CallbackError, _without(CB_ERR, "error"), "error"),
    ("callback error attempt str", CallbackError, _with(CB_ERR, "expectedAttempt", "1"), "expectedAttempt"),
]


@pytest.mark.parametrize("cls, raw, field", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_message_rejected_naming_field(cls: Any, raw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        cls.from_json(raw)
    assert field in str(info.value)
    assert info.value.details["field"] == field
