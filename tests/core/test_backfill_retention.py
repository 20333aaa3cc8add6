"""Backfill retention (automation §5: backfills 90 days; resolved requests 30 days).

A backfill that ended (SUCCEEDED, FAILED, CANCELLED) more than 90 days ago leaves the projection with its
chunks; only its id stays, marked expired, so a late or repeated event of it brings nothing back. A
live one never expires, nor do the resolved requests of its chunks. The state after any batching of one
event set, expired at the same instant, equals the whole set folded then expired (rebuild = live).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core.backfill_fold import BACKFILL_RETENTION_MS, chunk_requests
from servo.core.backfills import chunk_run_requests
from servo.core.events import (
    BackfillChunkPlanned,
    BackfillCreated,
    BackfillStateChanged,
    Event,
    RunRequestResolved,
)
from servo.core.schedule_fold import ScheduleState, expire_schedule_history, fold_schedules, settle_backfills

from tests.core.test_schedule_fold import T0, Ids

DAY = 86_400_000
ENDED, LIVE = "bf_ended000000000000000000000", "bf_live0000000000000000000000"
KEYS = ("date=d:2025-01-01", "date=d:2025-01-02", "date=d:2025-01-03")


def _planned(bf: str, index: int, keys: tuple[str, ...]) -> BackfillChunkPlanned:
    requests = {r.request_id: r.run_key for r in chunk_run_requests(bf, index, keys, ["raw.a"], {})}
    return BackfillChunkPlanned(bf, index, keys, requests)


def _resolved(bf: str, index: int, keys: tuple[str, ...]) -> list[RunRequestResolved]:
    requests = chunk_run_requests(bf, index, keys, ["raw.a"], {})
    return [
        RunRequestResolved(r.request_id, "CREATED", r.run_key, f"run-{bf}-{r.run_key[-1]}") for r in requests
    ]


def history() -> list[Event]:
    """One backfill that succeeds at about T0 + 10 s, one still running (its chunk resolved at T0)."""
    ids = Ids()
    return [
        ids.event(BackfillCreated(ENDED, ("raw.a",), {"explicit": list(KEYS)}, KEYS, 3, 3)),
        ids.event(_planned(ENDED, 0, KEYS)),
        ids.event(BackfillStateChanged(ENDED, "PENDING", "RUNNING", 2)),
        *(ids.event(r) for r in _resolved(ENDED, 0, KEYS)),
        ids.event(BackfillCreated(LIVE, ("raw.a",), {"explicit": list(KEYS)}, KEYS, 1, 1)),
        ids.event(_planned(LIVE, 0, KEYS[:1])),
        ids.event(BackfillStateChanged(LIVE, "PENDING", "RUNNING", 2)),
        *(ids.event(r) for r in _resolved(LIVE, 0, KEYS[:1])),
        ids.event(BackfillStateChanged(ENDED, "RUNNING", "SUCCEEDED", 3)),
        ids.event(BackfillStateChanged(ENDED, "RUNNING", "SUCCEEDED", 3)),  # a second planner, same move
    ]


def _ended_at(events: list[Event]) -> int:
    return min(
        e.timestamp_ms
        for e in events
        if isinstance(e.data, BackfillStateChanged)
        and e.data.backfill_id == ENDED
        and e.data.to_state == "SUCCEEDED"
    )


def _settled(state: ScheduleState) -> ScheduleState:
    runs = {r.run_id: "SUCCEEDED" for r in state.requests.values() if r.run_id and ENDED in r.run_id}
    return settle_backfills(state, runs.get)


def test_an_ended_backfill_goes_90_days_after_it_ended_with_its_chunks_and_a_live_one_stays() -> None:
    events = history()
    ended = _ended_at(events)
    state = _settled(fold_schedules(ScheduleState(), events))

    kept = expire_schedule_history(state, now_ms=ended + BACKFILL_RETENTION_MS)
    assert kept.backfills == state.backfills and kept.chunks == state.chunks  # the 90th day is kept

    gone = expire_schedule_history(state, now_ms=ended + BACKFILL_RETENTION_MS + 1)
    marker = gone.backfills[ENDED]
    assert not marker.created and marker.expired_at == ended  # only the id stays: reads answer 404
    assert (marker.state, marker.state_version, marker.partition_keys, marker.moves) == (
        "SUCCEEDED",
        3,
        None,
        "[]",
    )
    assert {c.backfill_id for c in gone.chunks.values()} == {LIVE}
    assert gone.backfills[LIVE] == state.backfills[LIVE]  # RUNNING: never expires
    assert ENDED in state.backfills and state.backfills[ENDED].created  # the input is not modified


def test_a_live_backfill_never_expires_and_a_chunk_that_has_not_ended_keeps_its_requests() -> None:
    state = _settled(fold_schedules(ScheduleState(), history()))
    much_later = expire_schedule_history(state, now_ms=T0 + 1000 * DAY)
    live_requests = {r for r, _, _ in chunk_requests(state.chunks[f"{LIVE}:0"])}  # its one planned chunk
    assert set(much_later.requests) == live_requests  # the ended chunk's requests went after 30 days
    assert much_later.backfills[LIVE] == state.backfills[LIVE]
    assert much_later.chunks[f"{LIVE}:0"] == state.chunks[f"{LIVE}:0"]
    ids = Ids()  # PENDING and PAUSED are as live as RUNNING
    pending = fold_schedules(
        ScheduleState(), [ids.event(BackfillCreated(ENDED, ("raw.a",), {"explicit": list(KEYS)}, KEYS, 3, 3))]
    )
    paused = fold_schedules(
        pending,
        [
            ids.event(BackfillStateChanged(ENDED, "PENDING", "RUNNING", 2)),
            ids.event(BackfillStateChanged(ENDED, "RUNNING", "PAUSED", 3)),
        ],
    )
    for alive in (pending, paused):
        assert expire_schedule_history(alive, now_ms=T0 + 1000 * DAY).backfills == alive.backfills


def test_a_cancelled_backfills_chunk_whose_run_goes_on_keeps_its_requests() -> None:
    ids = Ids()
    keys = KEYS[:1]
    events = [
        ids.event(BackfillCreated(ENDED, ("raw.a",), {"explicit": list(keys)}, keys, 1, 1)),
        ids.event(_planned(ENDED, 0, keys)),
        ids.event(BackfillStateChanged(ENDED, "PENDING", "RUNNING", 2)),
        *(ids.event(r) for r in _resolved(ENDED, 0, keys)),
        ids.event(BackfillStateChanged(ENDED, "RUNNING", "CANCELLED", 3)),
    ]
    runs = {r.run_id: "RUNNING" for e in events if isinstance(r := e.data, RunRequestResolved)}
    state = settle_backfills(fold_schedules(ScheduleState(), events), runs.get)
    assert state.chunks[f"{ENDED}:0"].state == "RUNNING"
    later = expire_schedule_history(state, now_ms=T0 + 31 * DAY)
    assert later.requests == state.requests  # its run has not ended: the chunk still settles from them
    assert settle_backfills(later, runs.get).chunks == state.chunks


def test_a_chunk_keeps_its_settled_outcome_after_its_requests_expired() -> None:
    state = _settled(fold_schedules(ScheduleState(), history()))
    chunk = state.chunks[f"{ENDED}:0"]
    assert chunk.state == "SUCCEEDED" and chunk.run_ids != "[]"
    later = expire_schedule_history(state, now_ms=_ended_at(history()) + 31 * DAY)
    assert not any(ENDED in r for r in later.requests) and later.backfills[ENDED].created
    assert _settled(later).chunks[f"{ENDED}:0"] == chunk  # outcomes, request statuses and run ids as stored


def test_a_late_or_repeated_event_of_an_expired_backfill_brings_nothing_back() -> None:
    events = history()
    now = _ended_at(events) + BACKFILL_RETENTION_MS + 1
    gone = expire_schedule_history(_settled(fold_schedules(ScheduleState(), events)), now)
    ids = Ids()
    ids.now = now
    written_late = [
        ids.event(BackfillStateChanged(ENDED, "SUCCEEDED", "CANCELLED", 4)),
        ids.event(_planned(ENDED, 1, KEYS)),
        ids.event(BackfillCreated(ENDED, ("raw.a",), {"explicit": list(KEYS)}, KEYS, 3, 3)),
    ]
    for event in [*events, *written_late]:
        again = expire_schedule_history(fold_schedules(gone, [event]), now)
        assert again.backfills[ENDED] == gone.backfills[ENDED], event.data
        assert not any(c.backfill_id == ENDED for c in again.chunks.values()), event.data


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_any_batching_expired_at_the_same_instant_equals_a_rebuild(data: st.DataObject) -> None:
    events = history()
    ended = _ended_at(events)
    instants = st.sampled_from(
        [T0 + 5 * DAY, ended + 31 * DAY, ended + BACKFILL_RETENTION_MS + 1, T0 + 400 * DAY]
    )
    repeats = st.lists(st.sampled_from(events), max_size=3)  # a hint naming an old object, a replayed create
    # A refresh folds what was written up to then, in any order; the next one the rest; later ones
    # only repeats of anything, each expiring at its own instant.
    cut = data.draw(st.integers(0, len(events)))
    refreshes = [
        (data.draw(st.permutations(events[:cut])), events[cut - 1].timestamp_ms if cut else T0),
        (data.draw(st.permutations(events[cut:] + data.draw(repeats))), events[-1].timestamp_ms + 60_000),
    ]
    now = refreshes[-1][1]
    for _ in range(data.draw(st.integers(1, 3))):
        now = max(now, data.draw(instants))
        refreshes.append((data.draw(repeats), now))
    live = ScheduleState()
    for batch, at in refreshes:  # as refresh_schedules: fold, settle, then cut
        live = expire_schedule_history(_settled(fold_schedules(live, batch)), at)
    rebuilt = expire_schedule_history(_settled(fold_schedules(ScheduleState(), events)), now)
    assert (live.backfills, live.chunks, live.requests) == (
        rebuilt.backfills,
        rebuilt.chunks,
        rebuilt.requests,
    )
