"""Sensor retention (automation §5: evaluations, items and resolved requests 30 days): the settled start of
each sensor's chain is folded into a checkpoint, the history before it goes, and a rebuild at the same
clock applies the same cut."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core._automation_events import RunRequestResolved
from servo.core.events import (
    Event,
    SensorDefinitionUpserted,
    SensorEvaluated,
    SensorEvaluationRequested,
    SensorMessageReceived,
    SensorStatusChanged,
    make_event,
)
from servo.core.sensor_fold import next_evaluation
from servo.core.sensor_retention import DUPLICATE_WINDOW_MS
from servo.core.sensor_rows import SensorRunItemRow, SensorTables, table_rows
from servo.core.sensors import evaluation_id, evaluation_request_id, parse_sensor
from servo.projections.codec import encode_table
from servo.projections.sensor_tables import SENSOR_STORED_TABLES as STORED
from servo.projections.sensor_tables import SENSOR_TABLES
from servo.services._compaction_ledger import ulid_floor
from servo.services.sensor_projection import cut_sensors, rebuild_sensors
from servo.tokens import TTL_SLACK_S

from tests.core.test_sensors import _result

T0 = 1_736_935_200_000
DAY = 86_400_000
POLL = parse_sensor(
    {
        "id": "files",
        "kind": "POLL",
        "target": ["raw.files"],
        "minimumIntervalSeconds": 30,
        "defaultEnabled": True,
    }
)
PUSH = parse_sensor({"id": "inbox", "kind": "PUSH", "target": ["raw.files"], "defaultEnabled": True})


class Ledger:
    """Events with ULID ids at their instant (the ledger's ids are time-ordered)."""

    def __init__(self) -> None:
        self.n = 0

    def ev(self, data: Any, at: int) -> Event:
        self.n += 1
        return make_event(
            data, event_id=ulid_floor(at) + f"{self.n:016d}", timestamp_ms=at, tenant_id="t", workspace_id="w"
        )

    def fast(self, data: Any, at: int) -> Event:
        """As ``ev`` without proving the encoding (a month of 30-second polls is 350,000 events)."""
        self.n += 1
        return Event(
            event_id=ulid_floor(at) + f"{self.n:016d}",
            event_type=type(data).__name__,
            timestamp_ms=at,
            source="servo-flow/t/w",
            tenant_id="t",
            workspace_id="w",
            idempotency_key=data.idempotency_key(),
            data=data,
        )


def _define(ledger: Ledger, spec: Any, at: int = T0) -> Event:
    return ledger.ev(
        SensorDefinitionUpserted(spec.sensor_id, "m1", spec.to_manifest(), spec.definition_hash, 1), at
    )


def _poll(ledger: Ledger, version: int, at: int, *, triggered: bool) -> list[Event]:
    """One scheduled poll of version ``version``: its request, its result and, when it asked for a run,
    the run request's outcome."""
    eid = evaluation_id("files", version, 1)
    requests = (
        ({"request_id": evaluation_request_id(eid, 0), "run_key": f"sensor:files:v{version}:0"},)
        if triggered
        else ()
    )
    result = SensorEvaluated(
        "files",
        eid,
        version,
        "POLL",
        "TRIGGERED" if triggered else "SKIPPED",
        cursor_updated=triggered,
        cursor=f"c{version}" if triggered else None,
        run_requests=requests,
    )
    events = [
        ledger.fast(SensorEvaluationRequested("files", eid, version, at, "POLL", ()), at),
        ledger.fast(result, at + 1_000),
    ]
    if triggered:
        outcome = RunRequestResolved(
            evaluation_request_id(eid, 0), "CREATED", requests[0]["run_key"], f"r{version}"
        )
        events.append(ledger.fast(outcome, at + 2_000))
    return events


def _bytes(tables: SensorTables) -> int:
    rows = table_rows(tables)
    return sum(len(encode_table(table, rows[table.name])) for table in SENSOR_TABLES)


def _simulate(interval_ms: int, days: int, every_days: int) -> tuple[list[Event], list[SensorTables]]:
    """A poll sensor evaluated every ``interval_ms`` for ``days`` (every tenth poll asks for a run, whose
    outcome is recorded), its projection refreshed every ``every_days``: the whole history and the state
    after each refresh."""
    ledger = Ledger()
    history = [_define(ledger, POLL)]
    live = SensorTables().with_events(history)
    version, at, states = 0, T0 + interval_ms, []
    for day in range(every_days, days + 1, every_days):
        batch = []
        while at < T0 + day * DAY:
            batch += _poll(ledger, version, at, triggered=version % 10 == 0)
            version, at = version + 1, at + interval_ms
        history += batch
        live = cut_sensors(live.with_events(batch), T0 + day * DAY)
        states.append(live)
    return history, states


def test_a_poll_sensor_holds_the_same_events_after_2_20_and_60_days_and_30_days_of_evaluations() -> None:
    history, states = _simulate(30_000, 60, 2)
    polls = sum(isinstance(e.data, SensorEvaluated) for e in history)
    assert polls == 60 * 2880 - 1
    kept = {2 * (i + 1): len(s.events) for i, s in enumerate(states)}
    # The events a publish re-folds are those of the last hour or so, however long the sensor has run.
    assert kept[2] == kept[20] == kept[60] < 300, kept
    evaluations = {day: table_rows(states[day // 2 - 1])["sensor_evaluations"] for day in (2, 20, 60)}
    assert [len(evaluations[day]) for day in (2, 20)] == [2 * 2880 - 1, 20 * 2880 - 1]
    # Past 30 days the rows of the last 30 days, finished, with what the events showed.
    assert len(evaluations[60]) == 30 * 2880
    first = min(evaluations[60], key=lambda r: r.requested_at or 0)
    assert (first.evaluation_id, first.status, first.requested_at, first.reported_at) == (
        "files:v86399:1",
        "SKIPPED",
        T0 + 30 * DAY,
        T0 + 30 * DAY + 1_000,
    )
    triggered = next(r for r in evaluations[60] if r.evaluation_id == "files:v86400:1")
    assert (triggered.status, triggered.cursor_after, triggered.not_before_at) == (
        "TRIGGERED",
        "c86400",
        T0 + 30 * DAY + 30_000,
    )
    assert triggered.run_requests is not None and "sensor:files:v86400:0" in triggered.run_requests
    live = states[-1]
    view = live.view("files")
    assert view is not None and len(view.evaluations) < 150 and view.items == {}
    # The state is the sensor's own: version, cursor, the last evaluation and what is due next.
    last_poll = T0 + polls * 30_000
    assert view.state_version == polls and view.cursor == f"c{(polls - 1) // 10 * 10}"
    assert (view.last_evaluation_at, view.last_evaluation_status) == (last_poll + 1_000, "SKIPPED")
    plan = next_evaluation(view, POLL, now_ms=last_poll + 31_000, first_seen_at_ms=T0)
    assert plan is not None and plan.evaluation_id == f"files:v{polls}:1"
    # A rebuild from the whole ledger at the same clock lets the same history go.
    rebuilt = rebuild_sensors(history, now_ms=T0 + 60 * DAY)
    assert rebuilt == live and rebuilt.view("files") == view


def test_the_published_projection_of_a_poll_sensor_stops_growing_after_30_days() -> None:
    history, states = _simulate(15 * 60_000, 63, 1)
    sizes = {day: _bytes(states[day - 1]) for day in (31, 47, 63)}
    rows = {day: {k: len(v) for k, v in table_rows(states[day - 1]).items()} for day in (31, 47, 63)}
    events = [rows[day].pop("sensor_events") for day in (31, 47, 63)]
    # The events of the last hour (a poll's outcome more when one of them asked for a run).
    assert rows[31] == rows[47] == rows[63] and max(events) - min(events) <= 1, (rows, events)
    assert max(sizes.values()) <= 1.02 * min(sizes.values()), sizes
    assert table_rows(rebuild_sensors(history, now_ms=T0 + 63 * DAY)) == table_rows(states[-1])


def test_a_run_still_owed_keeps_its_evaluation_past_the_retention() -> None:
    ledger = Ledger()
    history = [_define(ledger, POLL), *_poll(ledger, 0, T0 + 1_000, triggered=True)]
    owed = history.pop()  # the request's outcome is not recorded yet
    history += _poll(ledger, 1, T0 + 31_000, triggered=False)
    later = T0 + 40 * DAY
    tables = cut_sensors(SensorTables().with_events(history), later)
    view = tables.view("files")
    assert view is not None and set(view.run_requests) == {"eval:files:v0:1:0"}
    assert view.state_version == 2 and len(tables.events) == len(history)  # nothing let go past it
    resolved = cut_sensors(SensorTables().with_events([*history, owed]), later)
    view = resolved.view("files")
    assert view is not None and view.run_requests == {} and view.evaluations == {}
    assert (view.state_version, view.cursor, len(resolved.events)) == (2, "c0", 1)


@pytest.mark.parametrize(
    ("days", "kept"),
    [(2, (["msg:m1", "msg:m2"], ["inbox:v0:1"])), (31, (["msg:m2"], []))],
    ids=["within-the-retention", "past-it"],
)
def test_an_event_older_than_the_checkpoint_changes_nothing(
    days: int, kept: tuple[list[str], list[str]]
) -> None:
    ledger = Ledger()
    history = [_define(ledger, PUSH)]
    history.append(ledger.ev(SensorMessageReceived("inbox", "m1", ""), T0 + 1_000))
    eid = evaluation_id("inbox", 0, 1)
    history.append(ledger.ev(SensorEvaluationRequested("inbox", eid, 0, T0, "PUSH", ("msg:m1",)), T0 + 2_000))
    history.append(
        ledger.ev(SensorEvaluated("inbox", eid, 0, "PUSH", "SKIPPED", item_ids=("msg:m1",)), T0 + 3_000)
    )
    history.append(ledger.ev(SensorMessageReceived("inbox", "m2", ""), T0 + 4_000))  # pending: kept
    now = T0 + days * DAY
    live = cut_sensors(SensorTables().with_events(history), now)
    before = table_rows(live)
    # Within the retention the settled evaluation and item are finished rows, no longer events.
    assert len(live.events) == 2  # the definition and the pending message
    assert [r.item_id for r in before["sensor_inbox"]] == kept[0]
    assert [r.evaluation_id for r in before["sensor_evaluations"]] == kept[1]
    stale = SensorEvaluated("inbox", "inbox:v0:2", 0, "PUSH", "SKIPPED", item_ids=("msg:m2",))
    late = [
        *history,  # every event again (a re-read of the whole ledger)
        ledger.ev(SensorMessageReceived("inbox", "m1", ""), T0 + 5_000),  # a redelivery below the cut
        ledger.ev(stale, T0 + 6_000),  # a rival result of the settled version
        ledger.ev(SensorStatusChanged("inbox", False, 1), T0 + 7_000),  # a claim on a settled step
    ]
    after = cut_sensors(live.with_events(late), now + 1)
    assert table_rows(after) == before
    assert table_rows(SensorTables.from_rows(*(before[t.name] for t in STORED))) == before


# ---------------------------------------------------------------------------------------------- property

_MESSAGES = ("m0", "m1", "m2")
# The latest a result can land after its request: the evaluation token is issued when the task is
# enqueued (at the request, or by the next sweep when that enqueue was lost) and expires timeout + 300 s
# after its not_before; a later result gets 401 and writes nothing. A superseded attempt's result may
# still land in that window, far inside the settle hour (``test_a_superseded_attempts_result_...``).
RESULT_WITHIN_MS = (PUSH.timeout_seconds + TTL_SLACK_S + 60) * 1000


@st.composite
def _histories(draw: st.DrawFn) -> tuple[list[Event], list[SensorRunItemRow]]:
    """A push sensor's events spread over 90 days (versions, results of every kind, disables, messages,
    outcomes of run requests) and run items."""
    ledger = Ledger()
    events = [_define(ledger, PUSH)]
    times = sorted(draw(st.lists(st.integers(1, 90 * DAY), min_size=0, max_size=24)))
    # As in a ledger: an evaluation is requested once, and its result comes after its request (the
    # callback refuses an evaluation it cannot see and stamps its result after the request's time) and
    # within its token's lifetime (``RESULT_WITHIN_MS``): the callback refuses an expired token.
    requested: dict[str, int] = {}
    for at in times:
        at += T0
        kind = draw(st.sampled_from(["msg", "req", "res", "res", "status", "resolved"]))
        version = draw(st.integers(0, 4))
        eid = f"inbox:v{version}:{draw(st.integers(1, 3))}"
        # An evaluation takes push messages and the run items below (a run-status item taken is DONE).
        taken = st.sampled_from([*(f"msg:{m}" for m in _MESSAGES), "run:r0", "run:r1"])
        items = tuple(draw(st.lists(taken, max_size=2, unique=True)))
        if kind == "msg":
            events.append(ledger.ev(SensorMessageReceived("inbox", draw(st.sampled_from(_MESSAGES)), ""), at))
        elif kind == "status":
            events.append(ledger.ev(SensorStatusChanged("inbox", draw(st.booleans()), version + 1), at))
        elif kind == "req":
            if eid in requested:
                continue
            requested[eid] = at
            events.append(ledger.ev(SensorEvaluationRequested("inbox", eid, version, at, "PUSH", items), at))
        elif kind == "resolved":
            request = evaluation_request_id(eid, 0)
            events.append(ledger.ev(RunRequestResolved(request, "CREATED", "k", "r"), at))
        elif eid in requested:
            at = requested[eid] + draw(st.integers(1, RESULT_WITHIN_MS))
            status = draw(st.sampled_from(["TRIGGERED", "SKIPPED", "ERROR"]))
            cursor = draw(st.sampled_from([None, "a", "b"]))
            result = _result(eid, version, status, sensor="inbox", cursor=cursor, items=items, trigger="PUSH")
            events.append(ledger.ev(result, at))
    runs = [
        SensorRunItemRow("inbox", f"run:r{i}", f"r{i}", "FAILED", ulid_floor(T0 + at) + "0" * 16)
        for i, at in enumerate(draw(st.lists(st.integers(1, 90 * DAY), max_size=3)))
    ]
    return events, runs


@settings(max_examples=150, deadline=None)
@given(history=_histories(), data=st.data())
def test_live_refreshes_with_cuts_equal_a_rebuild_at_the_same_clock(
    history: tuple[list[Event], list[SensorRunItemRow]], data: st.DataObject
) -> None:
    events, runs = history
    # Each event lands within five minutes of its id (the ledger's look-back covers that), in any order
    # among those, and may be read again later; the projection is refreshed at arbitrary instants.
    landed = sorted(
        ((e.timestamp_ms + data.draw(st.integers(0, 300_000)), i, e) for i, e in enumerate(events)),
        key=lambda x: (x[0], x[1]),
    )
    refreshes = sorted(data.draw(st.lists(st.integers(0, 130 * DAY), min_size=1, max_size=8)))
    live, now = SensorTables(), T0
    for offset in refreshes:
        now = T0 + offset
        arrived = [e for at, _, e in landed if at <= now]
        again = data.draw(st.lists(st.sampled_from(arrived), max_size=3)) if arrived else []
        batch = data.draw(st.permutations([*arrived, *again]))
        found = [r for r in runs if r.arrived_id <= ulid_floor(now)]
        live = cut_sensors(live.with_events(batch).with_run_items(found), now)
        reloaded = table_rows(live)
        assert table_rows(SensorTables.from_rows(*(reloaded[t.name] for t in STORED))) == reloaded
    arrived = [e for at, _, e in landed if at <= now]
    rebuilt = rebuild_sensors(arrived, [r for r in runs if r.arrived_id <= ulid_floor(now)], now_ms=now)
    assert table_rows(live) == table_rows(rebuilt)


# ---------------------------------------------------------------------------------------------- services


def test_after_30_days_the_sweep_lets_a_poll_sensors_history_go_and_resubmits_nothing(tmp_path: Path) -> None:
    from servo.services.runs import list_runs
    from servo.services.sensor_projection import refresh_sensors
    from servo.services.sensor_sweep import sweep_sensors

    from tests.services.sensor_support import (
        SECOND,
        T,
        W,
        deploy,
        evaluations,
        ledger_names,
        poll,
        report,
        show,
    )
    from tests.services.sensor_support import tasks as queued
    from tests.support.context import make_context

    ctx, clock, queue = make_context(tmp_path)
    deploy(ctx, poll(defaultEnabled=True))
    for cursor in ("c1", "c2"):
        sweep_sensors(ctx, T, W)
        [task] = queued(queue)
        report(ctx, task, status="TRIGGERED", cursorUpdated=True, cursor=cursor, runRequests=[{}])
        clock.advance(31 * SECOND)
    assert len(evaluations(ctx, status="TRIGGERED")) == 2 and len(list_runs(ctx, T, W, {})["runs"]) == 2
    # The next poll, files:v2:1, requested after commit, is never answered: a month on it expired.
    [unanswered] = queued(queue)
    assert unanswered["evaluationId"] == "files:v2:1"
    clock.advance(31 * DAY)
    before = set(ledger_names(ctx))
    assert sweep_sensors(ctx, T, W) == {"evaluations": 1, "runRequests": 0}
    written = [_ledger_event(ctx, n) for n in set(ledger_names(ctx)) - before]
    assert [type(e.data).__name__ for e in written] == ["SensorEvaluationRequested"]  # no run request again
    [task] = queued(queue)
    assert task["evaluationId"] == "files:v2:2" and task["cursor"] == "c2"
    sensor = show(ctx)
    assert (sensor["stateVersion"], sensor["cursor"], sensor["inFlightEvaluationId"]) == (
        2,
        "c2",
        "files:v2:2",
    )
    # The expired attempt stays while the one that replaced it is newer than the boundary.
    assert [(e["evaluationId"], e["status"]) for e in evaluations(ctx)] == [
        ("files:v2:2", "PENDING"),
        ("files:v2:1", "EXPIRED"),
    ]
    live = refresh_sensors(ctx, T, W)
    kept = [e.data.evaluation_id for e in live.events.values() if hasattr(e.data, "evaluation_id")]
    assert sorted(kept) == ["files:v2:1", "files:v2:2"]
    events = [_ledger_event(ctx, n) for n in ledger_names(ctx)]
    assert table_rows(rebuild_sensors(events, now_ms=clock.now_ms)) == table_rows(live)
    fresh = make_context(tmp_path, clock=clock)[0]  # another instance reads what was published
    assert table_rows(refresh_sensors(fresh, T, W)) == table_rows(live)


def _ledger_event(ctx: Any, name: str) -> Event:
    from servo.core.events import decode_event

    from tests.services.sensor_support import T, W

    obj = ctx.workspace_store(T, W).get(name)
    assert obj is not None
    return decode_event(obj.data)


def test_a_run_whose_item_was_let_go_is_not_an_item_again(tmp_path: Path) -> None:
    from servo.services.sensor_sweep import sweep_sensors
    from servo.services.trigger import trigger_run

    from tests.services.sensor_support import T, W, deploy, fail_run, report, run_status, show
    from tests.services.sensor_support import tasks as queued
    from tests.support.context import make_context

    ctx, clock, queue = make_context(tmp_path)
    deploy(ctx, run_status(defaultEnabled=True))
    _, answer = trigger_run(ctx, T, W, {"selection": ["ns.a"]})
    fail_run(ctx, queue, answer["runId"])
    sweep_sensors(ctx, T, W)
    [task] = queued(queue)
    report(ctx, task, status="SKIPPED")
    assert show(ctx, "on_failure")["pendingItems"] == 0
    # A month on, the run is still among the newest runs the sweep scans, but its item went.
    clock.advance(31 * DAY)
    assert sweep_sensors(ctx, T, W)["evaluations"] == 0 and queued(queue) == []
    assert show(ctx, "on_failure")["pendingItems"] == 0


def test_a_projection_published_before_checkpoints_reads_as_it_is_and_takes_its_cut(tmp_path: Path) -> None:
    import json

    from servo.services.sensor_projection import PROJECTION, refresh_sensors
    from servo.services.sensor_sweep import sweep_sensors

    from tests.services.sensor_support import T, W, deploy, poll, report
    from tests.services.sensor_support import tasks as queued
    from tests.support.context import make_context

    ctx, clock, queue = make_context(tmp_path)
    deploy(ctx, poll(defaultEnabled=True))
    sweep_sensors(ctx, T, W)
    [task] = queued(queue)
    report(ctx, task, status="SKIPPED")
    published = refresh_sensors(ctx, T, W)
    # The head as a server without checkpoints wrote it: no sensor_checkpoints file.
    store = ctx.workspace_store(T, W)
    head = store.get(PROJECTION.head_path)
    assert head is not None
    body = json.loads(head.data)
    del body["files"]["sensor_checkpoints"]
    store.put(PROJECTION.head_path, json.dumps(body).encode(), if_generation_match=head.generation)
    old = make_context(tmp_path, clock=clock)[0]
    assert table_rows(PROJECTION.load(old, T, W)) == table_rows(published)
    clock.advance(31 * DAY)
    cut = refresh_sensors(old, T, W)
    view = cut.view("files")
    # Only the next poll is kept: requested after commit for the current version, never answered.
    assert view is not None and view.state_version == 1 and set(view.evaluations) == {"files:v1:1"}
    assert len(cut.checkpoints()) == 1 and table_rows(PROJECTION.load(ctx, T, W)) == table_rows(cut)


def test_a_push_message_redelivered_after_its_events_went_is_a_duplicate_for_30_days(tmp_path: Path) -> None:
    from servo.services import sensors
    from servo.services.runs import list_runs
    from servo.services.sensor_projection import refresh_sensors
    from servo.services.sensor_sweep import sweep_sensors

    from tests.services.sensor_support import T, W, deploy, evaluations, ledger_names, push, report
    from tests.services.sensor_support import tasks as queued
    from tests.support.context import make_context

    ctx, clock, queue = make_context(tmp_path)
    deploy(ctx, push(defaultEnabled=True))
    envelope = {"message": {"messageId": "m1", "data": "aGk="}}
    assert sensors.receive_push(ctx, T, W, "inbox", envelope)["status"] == "RECORDED"
    [task] = queued(queue)
    report(ctx, task, status="TRIGGERED", runRequests=[{"itemId": "msg:m1"}])
    sweep_sensors(ctx, T, W)
    assert len(list_runs(ctx, T, W, {})["runs"]) == 1
    # Two days on, the message's events are folded into the checkpoint; its row and its id remain.
    clock.advance(2 * DAY)
    sweep_sensors(ctx, T, W)
    live = refresh_sensors(ctx, T, W)
    assert not [e for e in live.events.values() if hasattr(e.data, "message_id")]
    before = set(ledger_names(ctx))
    assert sensors.receive_push(ctx, T, W, "inbox", envelope)["status"] == "DUPLICATE"
    assert set(ledger_names(ctx)) == before and sweep_sensors(ctx, T, W)["evaluations"] == 0
    assert [e["evaluationId"] for e in evaluations(ctx, "inbox")] == ["inbox:v0:1"]
    assert len(list_runs(ctx, T, W, {})["runs"]) == 1
    fresh = make_context(tmp_path, clock=clock)[0]  # another instance reads what was published
    assert sensors.receive_push(fresh, T, W, "inbox", envelope)["status"] == "DUPLICATE"
    # Past the retention the id is forgotten (§5: 30 days), as the message's row is.
    clock.advance(29 * DAY)
    sweep_sensors(ctx, T, W)
    assert evaluations(ctx, "inbox") == []


# ---------------------------------------------------------------------------------------------- duplicates

HOUR = 3_600_000


def _copies_of_one_message(gap_ms: int) -> tuple[Ledger, list[Event], Event]:
    """A push message recorded, a disable that skips it, and a second copy of the message (the same
    idempotency key under another event id) ``gap_ms`` after the first."""
    ledger = Ledger()
    history = [
        _define(ledger, PUSH),
        ledger.ev(SensorMessageReceived("inbox", "m0", ""), T0 + 1_000),
        ledger.ev(SensorStatusChanged("inbox", False, 1), T0 + 2_000),
    ]
    return ledger, history, ledger.ev(SensorMessageReceived("inbox", "m0", ""), T0 + 1_000 + gap_ms)


def test_a_copy_of_a_message_let_go_arriving_after_the_cut_is_a_duplicate_live_and_in_a_rebuild() -> None:
    # The first copy is skipped by the disable and let go at the first cut; the second copy lands an hour
    # and a quarter after it, after that cut (seed 6 of the property): it is the same message.
    _, history, copy = _copies_of_one_message(75 * 60_000)
    live = cut_sensors(SensorTables().with_events(history), T0 + HOUR + 16 * 60_000)
    assert live.view("inbox") is not None and live.events.keys() == {history[0].event_id}
    for now in (T0 + 2 * HOUR, T0 + 3 * HOUR):
        live = cut_sensors(live.with_events([*history, copy]), now)
        rebuilt = rebuild_sensors([*history, copy], now_ms=now)
        assert table_rows(live) == table_rows(rebuilt)
        view = live.view("inbox")
        assert view is not None and view.pending_items() == []
        [item] = table_rows(live)["sensor_inbox"]
        assert (item.item_id, item.status, item.received_event_id) == (
            "msg:m0",
            "SKIPPED",
            history[1].event_id,
        )


def test_a_copy_of_a_message_set_aside_before_the_cut_stays_a_duplicate_after_it() -> None:
    # Both copies are folded before the first cut: the first is the message, the second is set aside and
    # must not become a message of its own when the first is let go.
    _, history, copy = _copies_of_one_message(75 * 60_000)
    now = T0 + HOUR + 16 * 60_000
    live = cut_sensors(SensorTables().with_events([*history, copy]), now)
    view = live.view("inbox")
    assert view is not None and view.pending_items() == [] and copy.event_id not in live.events
    assert table_rows(live) == table_rows(rebuild_sensors([*history, copy], now_ms=now))


def test_a_copy_recorded_past_the_duplicate_window_is_a_message_of_its_own() -> None:
    # 30 days less the settle hour after the first copy, the id is forgotten live (its finished row
    # expired), so a rebuild takes the later copy as a new message too, wherever the cuts fell.
    _, history, copy = _copies_of_one_message(DUPLICATE_WINDOW_MS + 1)
    late = copy.timestamp_ms + 2 * HOUR
    live = cut_sensors(SensorTables().with_events(history), T0 + 2 * HOUR)
    for now in (copy.timestamp_ms + 60_000, late):
        live = cut_sensors(live.with_events([*history, copy]), now)
    rebuilt = rebuild_sensors([*history, copy], now_ms=late)
    assert table_rows(live) == table_rows(rebuilt)
    view = live.view("inbox")
    assert view is not None and view.pending_items() == ["msg:m0"]
    assert view.items["msg:m0"].received_event_id == copy.event_id


def test_a_run_item_found_again_after_its_cut_changes_nothing() -> None:
    # The run scan may show a run again after its item went (the property's refreshes find every run
    # each time): below the checkpoint it is turned away like an event, so it is not pending again.
    ledger = Ledger()
    eid = evaluation_id("inbox", 0, 1)
    history = [
        _define(ledger, PUSH),
        ledger.ev(SensorEvaluationRequested("inbox", eid, 0, T0, "PUSH", ("run:r0",)), T0 + 2_000),
        ledger.ev(SensorEvaluated("inbox", eid, 0, "PUSH", "SKIPPED", item_ids=("run:r0",)), T0 + 3_000),
    ]
    run = SensorRunItemRow("inbox", "run:r0", "r0", "FAILED", ulid_floor(T0 + 1_000) + "0" * 16)
    live = cut_sensors(SensorTables().with_events(history).with_run_items([run]), T0 + 2 * HOUR)
    assert live.run_items == {} and [r.status for r in table_rows(live)["sensor_inbox"]] == ["DONE"]
    again = cut_sensors(live.with_run_items([run]), T0 + 3 * HOUR)
    assert table_rows(again) == table_rows(rebuild_sensors(history, [run], now_ms=T0 + 3 * HOUR))
    view = again.view("inbox")
    assert view is not None and view.pending_items() == [] and again.run_items == {}


@pytest.mark.parametrize("late_s", [1, 120, 300, 420])
def test_a_superseded_attempts_result_within_its_tokens_lifetime_folds_live_as_in_a_rebuild(
    late_s: int,
) -> None:
    # Attempt 1 goes unanswered, attempt 2 replaces it, then attempt 1's worker reports after all (its
    # token is still valid): whether a cut let attempt 1 go as EXPIRED before the result landed or not,
    # live and a rebuild agree. (A result hours after its request cannot land: its token has expired.)
    ledger = Ledger()
    events = [
        _define(ledger, PUSH),
        ledger.ev(SensorEvaluationRequested("inbox", "inbox:v0:1", 0, T0 + 1, "PUSH", ()), T0 + 1),
        ledger.ev(
            SensorEvaluationRequested("inbox", "inbox:v0:2", 0, T0 + 120_001, "PUSH", ()), T0 + 120_001
        ),
        ledger.ev(SensorMessageReceived("inbox", "m0", ""), T0 + 1),
    ]
    events.append(
        ledger.ev(
            _result("inbox:v0:1", 0, "TRIGGERED", sensor="inbox", cursor=None, items=(), trigger="PUSH"),
            T0 + 1 + late_s * 1000,
        )
    )
    live = SensorTables()
    for now in (T0 + 60_000, T0 + 400_000, T0 + 2 * HOUR, T0 + 5 * HOUR):
        arrived = [e for e in events if e.timestamp_ms <= now]
        live = cut_sensors(live.with_events(arrived), now)
        assert table_rows(live) == table_rows(rebuild_sensors(arrived, now_ms=now))
