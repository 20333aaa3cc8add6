"""The pure sensor core (automation §5, §6.2): ids and run keys, result checks, the compare-and-set fold
and the due decision. Tests are named after the scenarios of §7 they cover."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core._sensor_events import (
    SensorDefinitionRemoved,
    SensorDefinitionUpserted,
    SensorEvaluated,
    SensorEvaluationRequested,
    SensorMessageReceived,
    SensorStatusChanged,
)
from servo.core.errors import InvalidInput
from servo.core.sensor_fold import (
    SensorState,
    SensorView,
    fold_sensors,
    manual_evaluation,
    next_evaluation,
    sensor_view,
)
from servo.core.sensors import (
    InvalidSensor,
    SensorSpec,
    check_cursor,
    check_result_requests,
    evaluation_id,
    evaluation_request_id,
    evaluation_task_name,
    manual_evaluation_id,
    parse_evaluation_id,
    parse_sensor,
    sensor_run_key,
)

T0 = 1_736_935_200_000
POLL = {
    "id": "files",
    "kind": "POLL",
    "target": ["raw.files"],
    "minimumIntervalSeconds": 30,
    "defaultEnabled": True,
}
PUSH = {**POLL, "id": "inbox", "kind": "PUSH"}
DAY = [{"name": "date", "kind": "time", "granularity": "day", "start": "2025-01-01"}]


@dataclass(frozen=True)
class Ev:
    """A ledger event as the fold reads it (the codec registration is part of the wiring)."""

    event_id: str
    timestamp_ms: int
    data: Any


class Clock:
    def __init__(self) -> None:
        self.n = 0

    def ev(self, data: Any, at: int | None = None) -> Ev:
        self.n += 1
        return Ev(f"{self.n:026d}", T0 + self.n * 1000 if at is None else at, data)


def _result(
    eval_id: str,
    version: int,
    status: str = "TRIGGERED",
    *,
    sensor: str = "files",
    cursor: str | None = None,
    items: tuple[str, ...] = (),
    requests: int = 1,
    trigger: str = "POLL",
) -> SensorEvaluated:
    run_requests = tuple(
        {"request_id": evaluation_request_id(eval_id, i), "run_key": f"sensor:{sensor}:v{version}:{i}"}
        for i in range(requests if status == "TRIGGERED" else 0)
    )
    return SensorEvaluated(
        sensor,
        eval_id,
        version,
        trigger,
        status,
        cursor_updated=cursor is not None,
        cursor=cursor,
        item_ids=items,
        run_requests=run_requests,
        error="boom" if status == "ERROR" else None,
    )


def _define(clock: Clock, definition: dict[str, Any] = POLL) -> Ev:
    spec = parse_sensor(definition)
    return clock.ev(
        SensorDefinitionUpserted(spec.sensor_id, "m1", spec.to_manifest(), spec.definition_hash, 1)
    )


def _view(events: list[Ev], sensor: str = "files") -> SensorView:
    return sensor_view(fold_sensors(SensorState(), events).sensors[sensor])


# ---------------------------------------------------------------------------------------------- definitions


def test_definition_round_trips_its_canonical_form_and_hash_changes_with_it() -> None:
    spec = parse_sensor(POLL)
    assert parse_sensor(spec.to_manifest()) == spec
    assert spec.definition_hash.startswith("sha256:")
    assert parse_sensor({**POLL, "minimumIntervalSeconds": 31}).definition_hash != spec.definition_hash


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "Bad"}, "id"),
        ({"minimumIntervalSeconds": 9}, "minimumIntervalSeconds"),
        ({"minimumIntervalSeconds": 86_401}, "minimumIntervalSeconds"),
        ({"timeoutSeconds": 4}, "timeoutSeconds"),
        ({"timeoutSeconds": 901}, "timeoutSeconds"),
        ({"target": []}, "target"),
        ({"kind": "CRON"}, "kind"),
        ({"runStatus": ["FAILED"]}, "runStatus"),  # not a field of a poll sensor
        ({"kind": "RUN_STATUS", "runStatus": ["RUNNING"]}, "runStatus"),
    ],
)
def test_a_bad_definition_names_its_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSensor) as caught:
        parse_sensor({**POLL, **change})
    assert caught.value.details["field"] == field


def test_a_run_status_sensor_watches_listed_states_of_monitored_assets() -> None:
    spec = parse_sensor({"id": "alerts", "kind": "RUN_STATUS", "monitoredAssets": ["raw.a"]})
    assert spec.target is None and spec.run_status == ("FAILED",)
    assert spec.watches("FAILED", ["raw.a", "raw.b"])
    assert not spec.watches("SUCCEEDED", ["raw.a"]) and not spec.watches("FAILED", ["raw.b"])


def test_a_cursor_over_16_kib_is_refused() -> None:
    assert check_cursor("x" * 16_384) == "x" * 16_384
    with pytest.raises(InvalidSensor, match="16 KiB"):
        check_cursor("é" * 8_193)


# ---------------------------------------------------------------------------------------------- ids (P4)


def test_p4_ids_task_names_and_run_keys_are_deterministic() -> None:
    eid = evaluation_id("files", 2, 1)
    assert eid == "files:v2:1" and parse_evaluation_id(eid).state_version == 2
    assert manual_evaluation_id("files", "k-1") == "files:manual:k-1"
    assert parse_evaluation_id("files:manual:k-1").manual
    name = evaluation_task_name(eid)
    assert name == evaluation_task_name("files:v2:1") != evaluation_task_name("files:v2:2")
    assert name.startswith("s_") and len(name) == 28 and name[2:].isalnum() and name == name.lower()
    assert evaluation_request_id(eid, 3) == "eval:files:v2:1:3"
    assert sensor_run_key("files", 0, run_key="a.csv") == "sensor:files:a.csv"
    assert sensor_run_key("files", 1, state_version=2) == "sensor:files:v2:1"
    assert sensor_run_key("inbox", 0, message_id="m1") == "sensor:inbox:msg:m1:0"
    assert sensor_run_key("alerts", 0, run_id="run_x") == "sensor:alerts:run:run_x:0"


@pytest.mark.parametrize("text", ["files:v2", "files:v02:1", "files:v2:0", "Files:v1:1", "files:manual:a b"])
def test_a_malformed_evaluation_id_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_evaluation_id(text)


def test_a_run_key_over_256_bytes_fails() -> None:
    with pytest.raises(InvalidSensor, match="256"):
        sensor_run_key("files", 0, run_key="k" * 250)


# ---------------------------------------------------------------------------------------------- results


def test_result_requests_get_keys_ids_and_canonical_partitions() -> None:
    spec = parse_sensor({**PUSH, "target": ["raw.b", "raw.a"]})
    checked = check_result_requests(
        spec,
        "inbox:v3:1",
        3,
        [
            {"itemId": "msg:m1", "partitionKey": {"date": "2025-01-15"}},
            {"itemId": "msg:m1", "assetSelection": ["raw.a"], "partitionKey": "date=d:2025-01-16"},
            {"runKey": "own", "partitionKey": "date=d:2025-01-17", "labels": {"team": "x"}},
        ],
        DAY,
        now_s=T0 // 1000,
        item_ids=["msg:m1"],
    )
    assert [c.request_id for c in checked] == ["eval:inbox:v3:1:0", "eval:inbox:v3:1:1", "eval:inbox:v3:1:2"]
    assert [c.run_key for c in checked] == [
        "sensor:inbox:msg:m1:0",
        "sensor:inbox:msg:m1:1",
        "sensor:inbox:own",
    ]
    assert checked[0].selection == ("raw.a", "raw.b") and checked[1].selection == ("raw.a",)
    assert checked[0].partition_key == "date=d:2025-01-15"


def test_requests_breaking_the_definition_are_all_named() -> None:
    spec = parse_sensor(POLL)
    with pytest.raises(InvalidSensor) as caught:
        check_result_requests(
            spec,
            "files:v0:1",
            0,
            [
                {"assetSelection": ["raw.other"]},
                {"partitionKey": "region=s:ZXU"},
                {"runKey": "k" * 300},
                {"labels": {"servo.run": "x"}},
                {},
            ],
            [],
            now_s=0,
        )
    problems = caught.value.details["requests"]
    assert [p["index"] for p in problems] == [0, 1, 2, 3]
    assert "outside the target" in problems[0]["reason"] and "servo." in problems[3]["reason"]
    with pytest.raises(InvalidSensor, match="at most 100"):
        check_result_requests(spec, "files:v0:1", 0, [{}] * 101, [], now_s=0)


def test_a_partitioned_target_needs_a_key_that_fits() -> None:
    spec = parse_sensor(POLL)
    for bad in (None, "date=d:2025-13-01", {"region": "eu"}):
        with pytest.raises(InvalidSensor, match="partitionKey"):
            check_result_requests(spec, "files:v0:1", 0, [{"partitionKey": bad}], DAY, now_s=0)


# ---------------------------------------------------------------------------------------------- fold


def test_p3_a_matching_version_applies_and_a_mismatch_changes_nothing() -> None:
    clock = Clock()
    events = [_define(clock), clock.ev(_result("files:v0:1", 0, cursor="c1"))]
    view = _view(events)
    assert (view.state_version, view.cursor) == (1, "c1")
    assert view.evaluations["files:v0:1"].status == "TRIGGERED"
    assert list(view.run_requests) == ["eval:files:v0:1:0"]
    stale = _view([*events, clock.ev(_result("files:v0:2", 0, cursor="other"))])
    assert (stale.state_version, stale.cursor) == (1, "c1")
    assert stale.evaluations["files:v0:2"].status == "SKIPPED_STALE"
    assert stale.evaluations["files:v0:2"].dropped_run_requests == 1
    assert list(stale.run_requests) == ["eval:files:v0:1:0"]


def test_p2_a_scheduled_and_a_manual_evaluation_of_one_version_the_second_is_stale() -> None:
    clock = Clock()
    define = _define(clock)
    scheduled = clock.ev(_result("files:v0:1", 0, cursor="a", requests=2))
    manual = clock.ev(_result("files:manual:k", 0, cursor="b", trigger="MANUAL", requests=3))
    for order in ([define, scheduled, manual], [manual, define, scheduled]):
        view = _view(order)
        assert view.evaluations["files:v0:1"].status == "TRIGGERED"
        assert view.evaluations["files:manual:k"].status == "SKIPPED_STALE"
        assert view.evaluations["files:manual:k"].dropped_run_requests == 3
        assert (view.cursor, view.state_version, len(view.run_requests)) == ("a", 1, 2)


def test_p4_the_cursor_moves_v0_v1_v2_across_batches_and_a_rebuild() -> None:
    clock = Clock()
    events = [
        _define(clock),
        clock.ev(_result("files:v0:1", 0, cursor="c1")),
        clock.ev(_result("files:v1:1", 1, "SKIPPED")),  # no cursor update: c1 is kept
        clock.ev(_result("files:v2:1", 2, cursor="c3")),
    ]
    live = fold_sensors(SensorState(), events[:2])
    live = fold_sensors(live, events[2:])
    rebuilt = fold_sensors(SensorState(), events)
    assert sensor_view(live.sensors["files"]) == sensor_view(rebuilt.sensors["files"])
    assert _view(events[:3]).cursor == "c1"
    assert (_view(events).cursor, _view(events).state_version) == ("c3", 3)


def test_p5_an_error_keeps_the_cursor_and_backs_off_one_interval() -> None:
    clock = Clock()
    spec = parse_sensor(POLL)
    events = [_define(clock), clock.ev(_result("files:v0:1", 0, cursor="c1"))]
    error = clock.ev(_result("files:v1:1", 1, "ERROR"))
    view = _view([*events, error])
    assert (view.cursor, view.state_version, view.enabled) == ("c1", 1, True)
    assert view.last_evaluation_at == error.timestamp_ms and view.last_evaluation_status == "ERROR"
    at = error.timestamp_ms
    assert next_evaluation(view, spec, now_ms=at + 29_999, first_seen_at_ms=T0) is None
    plan = next_evaluation(view, spec, now_ms=at + 30_000, first_seen_at_ms=T0)
    assert plan is not None and plan.evaluation_id == "files:v1:2" and plan.not_before == at + 30_000


def test_p6_poll_is_due_one_interval_after_the_last_evaluation_also_after_a_rebuild() -> None:
    clock = Clock()
    spec = parse_sensor(POLL)
    done = clock.ev(_result("files:v0:1", 0))
    events = [_define(clock), done]
    for view in (_view(events), _view(list(reversed(events)))):
        assert next_evaluation(view, spec, now_ms=done.timestamp_ms + 10_000, first_seen_at_ms=T0) is None
        plan = next_evaluation(view, spec, now_ms=done.timestamp_ms + 31_000, first_seen_at_ms=T0)
        assert plan is not None and (plan.evaluation_id, plan.trigger) == ("files:v1:1", "POLL")


def test_p7_disabled_is_never_scheduled_and_skips_pending_items_but_manual_works_and_warns() -> None:
    clock = Clock()
    spec = parse_sensor(PUSH)
    message = clock.ev(SensorMessageReceived("inbox", "m1", "e30="))
    events = [_define(clock, PUSH), message, clock.ev(SensorStatusChanged("inbox", False, 1))]
    view = _view(events, "inbox")
    assert (view.enabled, view.state_version) == (False, 1)
    assert view.items["msg:m1"].status == "SKIPPED"
    assert next_evaluation(view, spec, now_ms=T0 + 10**9, first_seen_at_ms=T0) is None
    plan = manual_evaluation(view, "k1", now_ms=T0)
    assert (plan.evaluation_id, plan.expected_state_version, plan.warning) == (
        "inbox:manual:k1",
        1,
        "sensor is paused",
    )
    applied = _view(
        [*events, clock.ev(_result("inbox:manual:k1", 1, "SKIPPED", sensor="inbox", trigger="MANUAL"))],
        "inbox",
    )
    assert applied.evaluations["inbox:manual:k1"].status == "SKIPPED" and applied.state_version == 2
    scheduled_while_off = _view(
        [*events, clock.ev(_result("inbox:v1:1", 1, sensor="inbox", trigger="PUSH"))], "inbox"
    )
    assert scheduled_while_off.evaluations["inbox:v1:1"].status == "SKIPPED_STALE"


def test_disable_and_enable_bump_the_version_so_in_flight_results_go_stale() -> None:
    clock = Clock()
    events = [
        _define(clock),
        clock.ev(SensorEvaluationRequested("files", "files:v0:1", 0, T0, "POLL")),
        clock.ev(SensorStatusChanged("files", False, 1)),
        clock.ev(SensorStatusChanged("files", True, 2)),
        clock.ev(_result("files:v0:1", 0, cursor="late")),
    ]
    view = _view(events)
    assert (view.state_version, view.enabled, view.cursor) == (2, True, None)
    assert view.evaluations["files:v0:1"].status == "SKIPPED_STALE"


def test_p10_messages_during_an_evaluation_are_taken_next_in_order_and_stale_ones_again() -> None:
    clock = Clock()
    spec = parse_sensor(PUSH)
    events = [_define(clock, PUSH), clock.ev(SensorMessageReceived("inbox", "m0", ""))]
    view = _view(events, "inbox")
    plan = next_evaluation(view, spec, now_ms=T0 + 10_000, first_seen_at_ms=T0)
    assert plan is not None and plan.item_ids == ("msg:m0",)
    events.append(
        clock.ev(
            SensorEvaluationRequested("inbox", plan.evaluation_id, 0, plan.not_before, "PUSH", plan.item_ids)
        )
    )
    events += [clock.ev(SensorMessageReceived("inbox", m, "")) for m in ("m3", "m1", "m2")]
    assert (
        next_evaluation(_view(events, "inbox"), spec, now_ms=T0 + 20_000, first_seen_at_ms=T0) is None
    )  # in flight
    events.append(clock.ev(_result("inbox:v0:1", 0, sensor="inbox", items=("msg:m0",), trigger="PUSH")))
    stale = clock.ev(_result("inbox:manual:x", 0, sensor="inbox", items=("msg:m3",), trigger="MANUAL"))
    view = _view([*events, stale], "inbox")
    assert view.items["msg:m0"].status == "DONE"
    assert view.pending_items() == ["msg:m3", "msg:m1", "msg:m2"]  # the stale one's item is pending again
    again = next_evaluation(view, spec, now_ms=T0 + 30_000, first_seen_at_ms=T0)
    assert again is not None and again.evaluation_id == "inbox:v1:1"
    assert again.item_ids == ("msg:m3", "msg:m1", "msg:m2")


def test_an_item_failing_three_times_is_failed() -> None:
    clock = Clock()
    events = [_define(clock, PUSH), clock.ev(SensorMessageReceived("inbox", "m0", ""))]
    for attempt in (1, 2):
        events.append(
            clock.ev(
                _result(f"inbox:v0:{attempt}", 0, "ERROR", sensor="inbox", items=("msg:m0",), trigger="PUSH")
            )
        )
    assert _view(events, "inbox").items["msg:m0"].status == "PENDING"
    events.append(
        clock.ev(_result("inbox:v0:3", 0, "ERROR", sensor="inbox", items=("msg:m0",), trigger="PUSH"))
    )
    item = _view(events, "inbox").items["msg:m0"]
    assert (item.status, item.error_count) == ("FAILED", 3)


def test_p13_no_result_past_the_timeout_gives_attempt_two_and_a_late_first_still_competes() -> None:
    clock = Clock()
    spec = parse_sensor(POLL)
    events = [_define(clock), clock.ev(SensorEvaluationRequested("files", "files:v0:1", 0, T0, "POLL"))]
    deadline = T0 + 60_000 + 60_000
    assert next_evaluation(_view(events), spec, now_ms=deadline, first_seen_at_ms=T0) is None
    plan = next_evaluation(_view(events), spec, now_ms=deadline + 1, first_seen_at_ms=T0)
    assert plan is not None and (plan.evaluation_id, plan.expected_state_version) == ("files:v0:2", 0)
    events.append(
        clock.ev(SensorEvaluationRequested("files", plan.evaluation_id, 0, plan.not_before, "POLL"))
    )
    assert _view(events).evaluations["files:v0:1"].status == "EXPIRED"
    late = clock.ev(_result("files:v0:1", 0, cursor="late"))
    second = clock.ev(_result("files:v0:2", 0, cursor="second"))
    for order in ([*events, late, second], [*events, second, late]):
        view = _view(order)
        applied = [e for e in view.evaluations.values() if e.status == "TRIGGERED"]
        assert [e.evaluation_id for e in applied] == ["files:v0:1"]  # the first in ledger order wins
        assert view.evaluations["files:v0:2"].status == "SKIPPED_STALE" and view.state_version == 1


def test_removal_stops_scheduling_and_re_adding_keeps_the_state() -> None:
    clock = Clock()
    spec = parse_sensor(POLL)
    events = [
        _define(clock),
        clock.ev(_result("files:v0:1", 0, cursor="c")),
        clock.ev(SensorDefinitionRemoved("files", "m2")),
    ]
    view = _view(events)
    assert view.removed and next_evaluation(view, spec, now_ms=T0 + 10**9, first_seen_at_ms=T0) is None
    readded = _view([*events, _define(clock)])
    assert not readded.removed and readded.cursor == "c"


# ---------------------------------------------------------------------------------------------- properties

_MESSAGES = ("m0", "m1", "m2")


@st.composite
def _histories(draw: st.DrawFn) -> list[Ev]:
    clock = Clock()
    events = [_define(clock, PUSH)]
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["msg", "req", "res", "status"]))
        version = draw(st.integers(0, 3))
        if kind == "msg":
            events.append(clock.ev(SensorMessageReceived("inbox", draw(st.sampled_from(_MESSAGES)), "")))
        elif kind == "status":
            events.append(clock.ev(SensorStatusChanged("inbox", draw(st.booleans()), version + 1)))
        else:
            eid = f"inbox:v{version}:{draw(st.integers(1, 3))}"
            items = tuple(
                f"msg:{m}" for m in draw(st.lists(st.sampled_from(_MESSAGES), max_size=2, unique=True))
            )
            if kind == "req":
                events.append(clock.ev(SensorEvaluationRequested("inbox", eid, version, T0, "PUSH", items)))
            else:
                status = draw(st.sampled_from(["TRIGGERED", "SKIPPED", "ERROR"]))
                cursor = draw(st.sampled_from([None, "a", "b"]))
                events.append(
                    clock.ev(
                        _result(
                            eid, version, status, sensor="inbox", cursor=cursor, items=items, trigger="PUSH"
                        )
                    )
                )
    return events


@settings(max_examples=80, deadline=None)
@given(history=_histories(), data=st.data())
def test_any_order_duplication_or_batching_folds_to_the_same_sensor(
    history: list[Ev], data: st.DataObject
) -> None:
    reference = _view(history, "inbox")
    shuffled = data.draw(st.permutations(history + data.draw(st.lists(st.sampled_from(history), max_size=4))))
    cut = data.draw(st.integers(0, len(shuffled)))
    state = fold_sensors(fold_sensors(SensorState(), shuffled[:cut]), shuffled[cut:])
    assert sensor_view(state.sensors["inbox"]) == reference


@settings(max_examples=80, deadline=None)
@given(history=_histories(), version=st.integers(0, 4), cursor=st.sampled_from(["x", None]))
def test_a_stale_evaluation_never_changes_cursor_or_version(
    history: list[Ev], version: int, cursor: str | None
) -> None:
    before = _view(history, "inbox")
    if version == before.state_version and before.enabled:
        version = before.state_version + 1  # a result from a version that is not current
    stale = Ev(
        "9" * 26, T0, _result(f"inbox:v{version}:9", version, sensor="inbox", cursor=cursor, trigger="PUSH")
    )
    after = _view([*history, stale], "inbox")
    assert (after.cursor, after.state_version) == (before.cursor, before.state_version)
    assert after.evaluations[stale.data.evaluation_id].status == "SKIPPED_STALE"


@settings(max_examples=80, deadline=None)
@given(history=_histories())
def test_no_item_is_lost(history: list[Ev]) -> None:
    view = _view(history, "inbox")
    received = {f"msg:{e.data.message_id}" for e in history if isinstance(e.data, SensorMessageReceived)}
    assert set(view.items) == received
    for item in view.items.values():
        assert item.status in ("DONE", "PENDING", "FAILED", "SKIPPED")
        if item.status == "SKIPPED":  # only by a disable applied after the item arrived
            assert any(isinstance(e.data, SensorStatusChanged) and not e.data.enabled for e in history)


def test_the_fold_leaves_its_input_state_unchanged() -> None:
    clock = Clock()
    first = fold_sensors(SensorState(), [_define(clock, PUSH)])
    fold_sensors(first, [clock.ev(SensorMessageReceived("inbox", "m0", ""))])
    assert first.sensors["inbox"].messages == {}


def test_sensor_spec_is_hashable_for_caching() -> None:
    assert hash(parse_sensor(POLL)) == hash(SensorSpec("files", "POLL", ("raw.files",), default_enabled=True))


def test_event_idempotency_keys_follow_section_5() -> None:
    definition = parse_sensor(POLL).to_manifest()
    keys = [
        SensorDefinitionUpserted("files", "m1", definition, "h", 1).idempotency_key(),
        SensorDefinitionRemoved("files", "m2").idempotency_key(),
        SensorStatusChanged("files", False, 3).idempotency_key(),
        SensorMessageReceived("files", "m-1", "").idempotency_key(),
        SensorEvaluationRequested("files", "files:v0:1", 0, T0, "POLL").idempotency_key(),
        _result("files:v0:1", 0).idempotency_key(),
    ]
    assert keys == [
        "sensor_def:files:m1",
        "sensor_def_rm:files:m2",
        "sensor_status:files:3:DISABLED",
        "sensor_msg:files:m-1",
        "sensor_eval_req:files:v0:1",
        "sensor_eval:files:v0:1",
    ]


def test_malformed_payloads_are_refused() -> None:
    with pytest.raises(InvalidInput, match="status"):
        SensorMessageReceived("files", "m", "", status="LOST")
    with pytest.raises(InvalidInput, match="run_requests"):
        SensorEvaluated("files", "files:v0:1", 0, "POLL", "SKIPPED", run_requests=({"request_id": "x"},))
    with pytest.raises(InvalidInput, match="evaluation_id"):
        SensorEvaluationRequested("files", "other:v0:1", 0, T0, "POLL")


def test_p11_a_failed_run_is_one_item_of_a_run_status_sensor_and_its_request_runs() -> None:
    clock = Clock()
    definition = {"id": "chain", "kind": "RUN_STATUS", "target": ["raw.files"], "defaultEnabled": True}
    spec = parse_sensor(definition)
    assert spec.watches("FAILED", ["raw.a"]) and not spec.watches("SUCCEEDED", ["raw.a"])
    events = [_define(clock, definition)]
    run_items = {"run:run_1": "0" * 25 + "9"}  # from the run fold: the event that made run_1 FAILED
    log = fold_sensors(SensorState(), events).sensors["chain"]
    view = sensor_view(log, run_items)
    plan = next_evaluation(view, spec, now_ms=T0, first_seen_at_ms=T0)
    assert plan is not None and (plan.item_ids, plan.trigger) == (("run:run_1",), "RUN_STATUS")
    (request,) = check_result_requests(
        spec, plan.evaluation_id, 0, [{"itemId": "run:run_1"}], [], now_s=0, item_ids=plan.item_ids
    )
    with pytest.raises(InvalidSensor, match="not an item"):
        check_result_requests(spec, plan.evaluation_id, 0, [{"itemId": "run:other"}], [], now_s=0)
    assert request.run_key == "sensor:chain:run:run_1:0"
    result = _result(plan.evaluation_id, 0, sensor="chain", items=("run:run_1",), trigger="RUN_STATUS")
    done = sensor_view(fold_sensors(SensorState(), [*events, clock.ev(result)]).sensors["chain"], run_items)
    assert done.items["run:run_1"].status == "DONE" and len(done.run_requests) == 1
    assert next_evaluation(done, spec, now_ms=T0 + 10**6, first_seen_at_ms=T0) is None


def test_sensor_events_round_trip_the_ledger_codec_and_belong_to_no_run() -> None:
    from servo.core.events import decode_event, encode_event, make_event
    from servo.core.ids import UlidFactory

    factory = UlidFactory(lambda n: bytes(n))
    eid = evaluation_id("files", 0, 1)
    payloads = [
        SensorDefinitionUpserted("files", "m1", POLL, "sha256:a", 1),
        SensorDefinitionRemoved("files", "m2"),
        SensorStatusChanged("files", True, 1),
        SensorMessageReceived("inbox", "m-1", "aGk=", {"k": "v"}, "RECORDED", "2025-01-15T00:00:00Z"),
        SensorEvaluationRequested("files", eid, 0, T0, "POLL"),
        SensorEvaluated(
            "files", eid, 0, "POLL", "TRIGGERED", cursor_updated=True, cursor="c1",
            run_requests=({"request_id": evaluation_request_id(eid, 0), "run_key": "sensor:files:v0:0",
                           "selection": ["raw.files"], "labels": {}},),
        ),
    ]  # fmt: skip
    for i, data in enumerate(payloads):
        event = make_event(
            data,
            event_id=factory.new(T0 + i),
            timestamp_ms=T0 + i,
            tenant_id="acme",
            workspace_id="prod",
        )
        assert decode_event(encode_event(event)) == event
        assert event.run_id is None
