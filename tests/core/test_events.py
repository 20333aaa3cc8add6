"""The ledger event codec: contracts §6 byte-exact, strict decoding, every type round-trips."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from servo.core.errors import InvalidEvent
from servo.core.events import (
    DispatchEnqueued,
    DispatchRequested,
    Event,
    EventData,
    OutputVisibility,
    PlanCreated,
    RunCancelRequested,
    RunTimedOut,
    RunTriggered,
    TaskFinished,
    TaskHeartbeat,
    TaskOutputVisibilityChanged,
    TaskStarted,
    TimerEnqueued,
    TimerFired,
    TimerRequested,
    UnknownEvent,
    decode_event,
    encode_event,
    event_id_from_object_name,
    ledger_object_name,
    make_event,
)
from servo.core.ids import attempt_id, dispatch_id, timer_id
from servo.core.taskdef import TaskDef

EXAMPLE = (
    b'{"correlation_id":"01ARZ3NDEKTSV4RRFFQ69G5FAW","data":{"labels":{"team":"data"},'
    b'"plan_id":"01ARZ3NDEKTSV4RRFFQ69G5FAX","root_assets":["raw.events"],"run_id":"01ARZ3NDEKTSV4RRFFQ69G5FAW",'
    b'"run_key":"nightly-2016-07-30","trigger":{"type":"manual","user_id":"user@example.com"},'
    b'"type":"run_triggered"},"event_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","event_type":"RunTriggered",'
    b'"event_version":1,"idempotency_key":"run:nightly-2016-07-30","source":"arco-flow/acme/prod",'
    b'"tenant_id":"acme","timestamp":"2016-07-30T23:54:10.259Z","workspace_id":"prod"}'
)
WITNESS = "sha256:9bfa721fcc989ccb6e07d15a4d839821b4404f7873d9bc12a7fa2083a5c9930d"
EID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
RUN = "01ARZ3NDEKTSV4RRFFQ69G5FAW"
D1 = dispatch_id(RUN, "raw.events", 1)
A1 = attempt_id(D1)
TIMER = timer_id("retry", RUN, "raw.events", 1, 1469922900)


def test_contract_example_round_trips_byte_identically() -> None:
    assert "sha256:" + hashlib.sha256(EXAMPLE).hexdigest() == WITNESS
    event = decode_event(EXAMPLE)
    assert event.event_type == "RunTriggered"
    assert event.timestamp_ms == 1469922850259
    assert event.source == "arco-flow/acme/prod"
    assert event.run_id == RUN
    assert isinstance(event.data, RunTriggered)
    assert event.data.labels == {"team": "data"}
    assert event.data.root_assets == ("raw.events",)
    assert encode_event(event) == EXAMPLE


def _all_payloads() -> list[EventData]:
    task = TaskDef(key="raw.events", asset_key="raw.events", requires_visible_output=True)
    down = TaskDef(
        key="raw.more", depends_on=("raw.events",), partition_key="date=d:2025-01-15", timeout_seconds=60
    )
    return [
        RunTriggered(RUN, "01ARZ3NDEKTSV4RRFFQ69G5FAX", {"type": "manual", "user_id": "u"}, ("raw.events",)),
        RunTriggered(
            RUN, "01ARZ3NDEKTSV4RRFFQ69G5FAX", {"type": "cron", "schedule_id": "s"}, ("raw.events",),
            run_key="k", labels={"a": "b"}, code_version="v1", timeout_seconds=600, traceparent="00-ab-cd-01",
        ),
        PlanCreated(RUN, "01ARZ3NDEKTSV4RRFFQ69G5FAX", (task, down)),
        RunCancelRequested(RUN, "user@example.com", reason="stop"),
        RunCancelRequested(RUN, "user@example.com"),
        RunTimedOut(RUN, "run_timeout"),
        TaskStarted(RUN, "raw.events", 1, A1, "w1"),
        TaskHeartbeat(RUN, "raw.events", 1, A1, "w1"),
        TaskHeartbeat(RUN, "raw.events", 1, A1, "w1", heartbeat_at=1469922851000, progress_pct=50,
                      message="m"),
        TaskFinished(RUN, "raw.events", 1, A1, "w1", "succeeded", materialization_id="m1",
                     output={"rowCount": 3, "deltaVersion": 7, "outputVisibilityState": "PENDING"},
                     metrics={"cpuTimeMs": 5}, output_visibility=OutputVisibility("pending"),
                     dispatched_at=1469922849000),
        TaskFinished(RUN, "raw.events", 1, A1, "w1", "failed", error_message="boom",
                     error={"category": "USER_CODE", "message": "boom", "retryable": False},
                     partial_progress_json='{"p":1}', error_category="USER_CODE"),
        TaskOutputVisibilityChanged(RUN, "raw.events", 1, A1, "visible", published_at=1469922852000),
        DispatchRequested(RUN, "raw.events", 1, A1, D1),
        DispatchRequested(RUN, "raw.events", 1, A1, D1, worker_queue="gpu"),
        DispatchEnqueued(D1, "d_x"),
        DispatchEnqueued(D1, "d_x", run_id=RUN, task_key="raw.events", attempt=1),
        TimerRequested(TIMER, "retry", 1469922900000, run_id=RUN, task_key="raw.events", attempt=1),
        TimerEnqueued(TIMER, "t_x"),
        TimerFired(TIMER, "retry"),
    ]  # fmt: skip


def _event(data: EventData, **kw: Any) -> Event:
    return make_event(
        data, event_id=EID, timestamp_ms=1469922850259, tenant_id="acme", workspace_id="prod", **kw
    )


@pytest.mark.parametrize("data", _all_payloads(), ids=lambda d: type(d).__name__)
def test_every_type_round_trips(data: EventData) -> None:
    event = _event(data)
    raw = encode_event(event)
    again = decode_event(raw)
    assert again == event
    assert encode_event(again) == raw
    body = json.loads(raw)
    assert body["source"] == "servo-flow/acme/prod"
    assert body["correlation_id"] == RUN
    assert None not in body["data"].values()


def test_idempotency_keys_follow_the_table() -> None:
    keys = [_event(d).idempotency_key for d in _all_payloads()]
    assert keys == [
        f"run:{RUN}", "run:k", f"plan:{RUN}", f"cancel_req:{RUN}", f"cancel_req:{RUN}", f"run_timeout:{RUN}",
        f"started:{RUN}:raw.events:1", f"heartbeat:{RUN}:raw.events:1:{A1}",
        f"heartbeat:{RUN}:raw.events:1:{A1}:1469922851000", f"finished:{RUN}:raw.events:1",
        f"finished:{RUN}:raw.events:1", f"output_visibility:{RUN}:raw.events:1:visible",
        f"dispatch_req:{D1}", f"dispatch_req:{D1}", f"dispatch_ack:{D1}", f"dispatch_ack:{D1}",
        f"timer_req:{TIMER}", f"timer_ack:{TIMER}", f"timer_fired:{TIMER}",
    ]  # fmt: skip


def test_run_id_comes_from_dispatch_and_timer_ids() -> None:
    assert _event(DispatchEnqueued(D1, "d_x")).run_id == RUN
    assert _event(TimerFired(TIMER, "retry")).run_id == RUN


def test_completion_recorded_decodes_to_task_finished_and_keeps_its_wire_name() -> None:
    data = TaskFinished(
        RUN, "raw.events", 1, A1, "w1", "succeeded", output_visibility=OutputVisibility("visible")
    )
    event = _event(data, event_type="TaskCompletionRecorded")
    raw = encode_event(event)
    body = json.loads(raw)
    assert body["event_type"] == "TaskCompletionRecorded"
    assert body["data"]["type"] == "task_completion_recorded"
    again = decode_event(raw)
    assert isinstance(again.data, TaskFinished)
    assert encode_event(again) == raw
    with pytest.raises(InvalidEvent):
        _event(RunTimedOut(RUN, "x"), event_type="TaskCompletionRecorded")


def test_unknown_type_decodes_to_unknown_event_and_round_trips() -> None:
    body = json.loads(EXAMPLE)
    body["event_type"] = "SomethingNew"
    body["data"] = {"type": "something_new", "run_id": RUN, "n": 1}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    event = decode_event(raw)
    assert event.data == UnknownEvent(
        type="something_new", raw={"type": "something_new", "run_id": RUN, "n": 1}
    )
    assert event.run_id == RUN
    assert encode_event(event) == raw


def _mutated(path: str, value: Any) -> bytes:
    body = json.loads(EXAMPLE)
    target = body
    *parents, leaf = path.split(".")
    for p in parents:
        target = target[p]
    if value is _DELETE:
        del target[leaf]
    else:
        target[leaf] = value
    return json.dumps(body).encode()


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("event_id", "not-a-ulid", "event_id"),
        ("event_version", 2, "event_version"),
        ("event_version", True, "event_version"),
        ("timestamp", "yesterday", "timestamp"),
        ("timestamp", _DELETE, "timestamp"),
        ("source", "arco-flow/other/prod", "source"),
        ("tenant_id", 7, "tenant_id"),
        ("idempotency_key", "run:other", "idempotency_key"),
        ("surprise", 1, "surprise"),
        ("data", [], "data"),
        ("data.type", 5, "data.type"),
        ("data.type", "plan_created", "data.type"),
        ("data.run_id", _DELETE, "data.run_id"),
        ("data.run_id", 12, "data.run_id"),
        ("data.root_assets", "raw.events", "data.root_assets"),
        ("data.labels", {"team": 1}, "data.labels"),
        ("data.trigger", {"type": "carrier_pigeon"}, "data.trigger.type"),
        ("data.extra", "x", "data.extra"),
    ],
)
def test_decode_is_strict_and_names_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_event(_mutated(path, value))
    assert info.value.details["field"] == field


def test_decode_rejects_floats_duplicates_and_non_objects() -> None:
    for raw in (EXAMPLE.replace(b'"event_version":1', b'"event_version":1.0'), b"[]", b"{", b'{"a":1,"a":1}'):
        with pytest.raises(InvalidEvent):
            decode_event(raw)


@pytest.mark.parametrize(
    "data",
    [
        lambda: TaskFinished(RUN, "raw.events", 1, A1, "w1", "exploded"),
        lambda: TaskFinished(RUN, "raw.events", 1, A1, "w1", "failed", error={"category": "GREMLINS"}),
        lambda: DispatchRequested(RUN, "raw.events", 2, A1, D1),
        lambda: DispatchEnqueued(D1, "d_x", attempt=2),
        lambda: TimerFired(TIMER, "egg"),
        lambda: PlanCreated(RUN, "p", ()),
        lambda: PlanCreated(RUN, "p", (TaskDef("a.b", depends_on=("a.zzz",)),)),
        lambda: PlanCreated(RUN, "p", (TaskDef("a.b"), TaskDef("a.b"))),
        lambda: PlanCreated(RUN, "p", (TaskDef("a:b"),)),
        lambda: TaskOutputVisibilityChanged(RUN, "raw.events", 1, A1, "VISIBLE"),
    ],
)
def test_payload_invariants_are_checked_on_construction(data: Any) -> None:
    with pytest.raises(InvalidEvent):
        data()


def test_plan_taskdef_defaults_and_strictness() -> None:
    event = _event(PlanCreated(RUN, "p", (TaskDef("raw.events"),)))
    body = json.loads(encode_event(event))
    assert body["data"]["tasks"] == [
        {"key": "raw.events", "depends_on": [], "max_attempts": 3, "heartbeat_timeout_sec": 90,
         "requires_visible_output": False}
    ]  # fmt: skip
    del body["data"]["tasks"][0]["requires_visible_output"]  # reads default to false
    decoded = decode_event(json.dumps(body).encode())
    assert isinstance(decoded.data, PlanCreated)
    assert decoded.data.tasks[0].requires_visible_output is False
    body["data"]["tasks"][0]["max_attempts"] = 0
    with pytest.raises(InvalidEvent) as info:
        decode_event(json.dumps(body).encode())
    assert info.value.details["field"] == "data.tasks.max_attempts"


def test_ledger_object_names() -> None:
    assert ledger_object_name(EID) == f"ledger/orchestration/{EID}.json"
    assert event_id_from_object_name(f"ledger/orchestration/{EID}.json") == EID
    assert event_id_from_object_name(f"acme/prod/ledger/orchestration/{EID}.json") == EID
    for bad in (
        "ledger/orchestration/x.json",
        f"ledger/other/{EID}.json",
        f"ledger/orchestration/{EID}.jsonx",
    ):
        with pytest.raises(InvalidEvent):
            event_id_from_object_name(bad)
    with pytest.raises(InvalidEvent):
        ledger_object_name("nope")
