"""The schedule fold: events round-trip the codec, and any order, duplication or batching gives one state."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core.events import (
    Event,
    RunRequestResolved,
    ScheduleDefinitionRemoved,
    ScheduleDefinitionUpserted,
    ScheduleStatusChanged,
    ScheduleTicked,
    decode_event,
    encode_event,
    make_event,
)
from servo.core.ids import UlidFactory
from servo.core.schedule_fold import ScheduleState, expire_schedule_history, fold_schedules

T0 = 1_736_935_200_000
DEFINITION = {
    "id": "nightly",
    "cron": "@daily",
    "timezone": "UTC",
    "target": ["raw.a"],
    "defaultEnabled": True,
}


class Ids:
    def __init__(self) -> None:
        self.factory = UlidFactory(lambda n: bytes(n))
        self.now = T0

    def event(self, data: Any, *, at: int | None = None) -> Event:
        self.now = at if at is not None else self.now + 1000
        return make_event(
            data,
            event_id=self.factory.new(self.now),
            timestamp_ms=self.now,
            tenant_id="acme",
            workspace_id="prod",
        )


def _tick(epoch: int, *, triggered: bool = True) -> ScheduleTicked:
    request = {
        "request_id": f"tick:nightly:{epoch}",
        "run_key": f"sched:nightly:{epoch}",
        "selection": ["raw.a"],
    }
    return ScheduleTicked(
        tick_id=f"nightly:{epoch}",
        schedule_id="nightly",
        scheduled_for=epoch * 1000,
        status="TRIGGERED" if triggered else "SKIPPED",
        definition_version=1,
        reason=None if triggered else "paused",
        run_request=request if triggered else None,
    )


def _history() -> list[Event]:
    ids = Ids()
    return [
        ids.event(ScheduleDefinitionUpserted("nightly", "m1", DEFINITION, "sha256:a", 1)),
        ids.event(ScheduleStatusChanged("nightly", False, 1)),
        ids.event(_tick(1_736_935_260, triggered=False)),
        ids.event(
            ScheduleDefinitionUpserted("nightly", "m2", {**DEFINITION, "cron": "@hourly"}, "sha256:b", 2)
        ),
        ids.event(ScheduleStatusChanged("nightly", True, 2)),
        ids.event(_tick(1_736_935_320)),
        ids.event(_tick(1_736_935_320)),  # a duplicated sweep: same tick id, a later event id
        ids.event(
            RunRequestResolved("tick:nightly:1736935320", "CREATED", "sched:nightly:1736935320", "01RUN")
        ),
        ids.event(ScheduleDefinitionRemoved("nightly", "m3")),
        ids.event(
            ScheduleDefinitionUpserted("nightly", "m4", {**DEFINITION, "cron": "@hourly"}, "sha256:b", 2)
        ),
    ]


def test_automation_events_round_trip_the_ledger_codec_and_belong_to_no_run() -> None:
    for event in _history():
        assert decode_event(encode_event(event)) == event
        assert event.run_id is None


def test_the_fold_gives_the_latest_definition_the_operator_status_and_one_tick_per_id() -> None:
    history = _history()
    state = fold_schedules(ScheduleState(), history)
    row = state.schedules["nightly"]
    assert (row.definition_version, row.definition_hash, row.status_version) == (2, "sha256:b", 2)
    assert row.enabled and row.status == "ACTIVE"  # re-added after removal, the operator's enable kept
    assert row.first_seen_at == history[0].timestamp_ms
    assert row.last_scheduled_at == 1_736_935_320_000
    assert sorted(state.ticks) == ["nightly:1736935260", "nightly:1736935320"]
    assert state.ticks["nightly:1736935320"].row_version == history[5].event_id  # the first of the two
    assert state.requests["tick:nightly:1736935320"].run_id == "01RUN"


def test_default_enabled_applies_on_first_sight_only_and_removal_shows_removed() -> None:
    ids = Ids()
    first = ids.event(
        ScheduleDefinitionUpserted("nightly", "m1", {**DEFINITION, "defaultEnabled": False}, "h1", 1)
    )
    second = ids.event(ScheduleDefinitionUpserted("nightly", "m2", DEFINITION, "h2", 2))
    state = fold_schedules(ScheduleState(), [second, first])
    assert not state.schedules["nightly"].enabled
    removed = fold_schedules(state, [ids.event(ScheduleDefinitionRemoved("nightly", "m3"))])
    assert removed.schedules["nightly"].status == "REMOVED"


def _rows(state: ScheduleState) -> tuple[Any, ...]:
    return (sorted(state.schedules.items()), sorted(state.ticks.items()), sorted(state.requests.items()))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_order_duplication_or_batching_folds_to_the_same_rows(data: st.DataObject) -> None:
    history = _history()
    reference = fold_schedules(ScheduleState(), sorted(history, key=lambda e: e.event_id))
    shuffled = data.draw(st.permutations(history + data.draw(st.lists(st.sampled_from(history), max_size=5))))
    cut = data.draw(st.integers(0, len(shuffled)))
    state = fold_schedules(fold_schedules(ScheduleState(), shuffled[:cut]), shuffled[cut:])
    assert _rows(state) == _rows(reference)


DAY_MS = 86_400_000


def test_retention_drops_ticks_and_resolved_requests_evaluated_over_30_days_ago_only() -> None:
    ids = Ids()
    old_done = ids.event(_tick(1_736_935_260), at=T0)
    old_resolved = ids.event(
        RunRequestResolved("tick:nightly:1736935260", "CREATED", "sched:nightly:1736935260", "01RUN"), at=T0
    )
    old_pending = ids.event(_tick(1_736_935_320), at=T0 + 1000)  # its run request never resolved
    old_skipped = ids.event(_tick(1_736_935_380, triggered=False), at=T0 + 2000)
    recent = ids.event(_tick(1_739_527_200), at=T0 + 30 * DAY_MS)
    state = fold_schedules(ScheduleState(), [old_done, old_resolved, old_pending, old_skipped, recent])
    last_scheduled = state.schedules["nightly"].last_scheduled_at

    kept = expire_schedule_history(state, now_ms=T0 + 30 * DAY_MS + 3000)

    assert sorted(kept.ticks) == ["nightly:1736935320", "nightly:1739527200"]  # the pending one is owed
    assert kept.requests == {}
    assert kept.schedules["nightly"].last_scheduled_at == last_scheduled  # never fires the past again
    assert sorted(state.ticks) != sorted(kept.ticks)  # the input is not modified
    same_day = expire_schedule_history(state, now_ms=T0 + 30 * DAY_MS)
    assert same_day.ticks == state.ticks and same_day.requests == state.requests
