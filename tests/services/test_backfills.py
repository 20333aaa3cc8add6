"""Backfills through the services on an injected clock (automation §7 B1, B2, B4, B6-B10; §6.8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from servo.core.canonical_json import canonical_bytes
from servo.core.errors import Conflict, InvalidInput, NotFound
from servo.core.events import PlanCreated, RunCancelRequested, RunTriggered
from servo.core.schedule_fold import ScheduleState
from servo.core.states import public_run_state
from servo.services import backfills
from servo.services._compaction_ledger import read_events
from servo.services.backfill_planner import plan_backfills, settler
from servo.services.callbacks import task_completed, task_started
from servo.services.compaction import rebuild
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.schedule_projection import rebuild_schedules, refresh_schedules

from tests.support.context import T0, FakeClock, RecordingQueue, make_context

T, W = "acme", "prod"
DAY = {"name": "date", "kind": "time", "granularity": "day", "start": "2025-01-01"}


def asset(key: str, *deps: str, partitioned: bool = True) -> dict[str, Any]:
    return {
        "key": key,
        "id": f"id-{key}",
        "dependencies": [{"upstreamKey": d} for d in deps],
        "partitioning": {"dimensions": [DAY] if partitioned else []},
        "execution": {"maxRetries": 0},
    }


Env = tuple[ServiceContext, FakeClock, RecordingQueue]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    ctx, clock, queue = make_context(tmp_path, clock=FakeClock(T0))
    body = {
        "manifestVersion": "1.0",
        "codeVersionId": "cv1",
        "assets": [asset("ns.a"), asset("ns.b", "ns.a"), asset("ns.flat", partitioned=False)],
    }
    deploy_manifest(ctx, T, W, canonical_bytes(body), None)
    return ctx, clock, queue


def days(first: int, last: int) -> dict[str, Any]:
    return {"range": {"start": f"2025-01-{first:02d}", "end": f"2025-01-{last:02d}"}}


def create(ctx: ServiceContext, key: str = "k1", **body: Any) -> tuple[int, dict[str, Any]]:
    return backfills.create_backfill(ctx, T, W, {"assets": ["ns.a", "ns.b"], **body}, key)


def work(ctx: ServiceContext, queue: RecordingQueue, fail: set[str] = frozenset()) -> int:  # type: ignore[assignment]
    """A worker: every queued task runs; tasks of a partition in ``fail`` fail. Returns tasks done."""
    done = 0
    while tasks := queue.take():
        for task in tasks:
            envelope = json.loads(task.body)
            headers = {"authorization": f"Bearer {envelope['taskToken']}"}
            ids = {"attempt": envelope["attempt"], "attemptId": envelope["attemptId"], "workerId": "w1"}
            task_started(ctx, envelope["taskId"], headers, ids)
            failed = envelope.get("partitionKey") in fail
            outcome: dict[str, Any] = {"outcome": "FAILED" if failed else "SUCCEEDED"}
            if failed:
                outcome["error"] = {"category": "USER_CODE", "message": "boom", "retryable": False}
            task_completed(ctx, envelope["taskId"], headers, {**ids, **outcome})
            done += 1
    return done


def events_of(ctx: ServiceContext, kind: type) -> list[Any]:
    store = ctx.workspace_store(T, W)
    names = [m.name for m in store.list("ledger/orchestration/")]
    return [e.data for e in read_events(store, names, T, W).events if isinstance(e.data, kind)]


def test_B1_a_key_is_required_a_replay_is_the_same_backfill_and_another_body_409(env: Env) -> None:
    ctx, _, _ = env
    with pytest.raises(InvalidInput) as caught:
        backfills.create_backfill(ctx, T, W, {"assets": ["ns.a"], "partitions": days(1, 2)}, None)
    assert caught.value.details["field"] == "Idempotency-Key"
    status, first = create(ctx, partitions=days(1, 2))
    assert status == 201 and first["created"] is True
    status, again = create(ctx, partitions=days(1, 2))
    assert status == 200 and again == {"backfillId": first["backfillId"], "created": False}
    with pytest.raises(Conflict) as conflict:
        create(ctx, partitions=days(1, 3))
    assert conflict.value.details["conflictType"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(events_of(ctx, RunTriggered)) == 2  # the replay planned nothing twice


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"partitions": {"range": {"start": "2025-01-05", "end": "2025-01-01"}}}, "partitions.range"),
        ({"partitions": {"explicit": []}}, "partitions.explicit"),
        ({"partitions": {"explicit": ["date=d:2024-12-01"]}}, "partitions.explicit"),
        ({"assets": ["ns.flat"], "partitions": days(1, 2)}, "assets"),
        ({"assets": ["ns.nope"], "partitions": days(1, 2)}, "assets"),
        ({"assets": [], "partitions": days(1, 2)}, "assets"),
        ({"partitions": days(1, 2), "chunkSize": 0}, "chunkSize"),
        ({"partitions": days(1, 2), "chunkSize": 5, "maxConcurrentRuns": 2}, "maxConcurrentRuns"),
        ({}, "partitions"),
        ({"partitions": days(1, 2), "colour": "red"}, "colour"),
    ],
)
def test_B2_bad_input_is_400_naming_the_field_and_writes_nothing(
    env: Env, body: dict[str, Any], field: str
) -> None:
    ctx, _, _ = env
    with pytest.raises(InvalidInput) as caught:
        create(ctx, **body)
    assert str(caught.value.details["field"]).startswith(field)
    assert list(ctx.workspace_store(T, W).list("requests/")) == []


def test_B9_B10_a_backfill_runs_every_partition_once_and_ends_succeeded(env: Env) -> None:
    ctx, _, queue = env
    _, made = create(ctx, partitions=days(1, 5), chunkSize=2, maxConcurrentRuns=2)
    bf = made["backfillId"]
    assert work(ctx, queue) == 10  # 5 partitions x 2 assets
    view = backfills.get_backfill(ctx, T, W, bf)
    assert view["state"] == "SUCCEEDED"
    assert view["partitionCounts"] == {
        "total": 5,
        "pending": 0,
        "running": 0,
        "succeeded": 5,
        "failed": 0,
        "cancelled": 0,
    }
    assert view["chunkCounts"]["succeeded"] == 3
    runs = events_of(ctx, RunTriggered)
    assert sorted(r.run_key for r in runs) == sorted(
        f"backfill:{bf}:chunk:{i // 2}:{i % 2}" for i in range(5)
    )
    assert all(r.trigger["backfill"]["backfill_id"] == bf for r in runs)
    for plan in events_of(ctx, PlanCreated):
        assert {t.key: tuple(t.depends_on) for t in plan.tasks} == {"ns.a": (), "ns.b": ("ns.a",)}
    chunks = backfills.list_chunks(ctx, T, W, bf, {})["chunks"]
    assert [c["state"] for c in chunks] == ["SUCCEEDED"] * 3
    assert all(p["requestStatus"] == "CREATED" and p["runId"] for c in chunks for p in c["partitions"])


def test_B4_never_more_active_runs_than_the_maximum(env: Env) -> None:
    ctx, _, queue = env
    create(ctx, partitions=days(1, 5), chunkSize=2, maxConcurrentRuns=2)
    assert len(events_of(ctx, RunTriggered)) == 2  # chunk 1 waits for both runs of chunk 0
    work(ctx, queue)
    assert len(events_of(ctx, RunTriggered)) == 5


def test_one_failed_partition_fails_the_backfill_and_retry_failed_reruns_only_it(env: Env) -> None:
    ctx, _, queue = env
    _, made = create(ctx, partitions=days(1, 4), chunkSize=2, maxConcurrentRuns=4)
    work(ctx, queue, fail={"date=d:2025-01-03"})
    parent = backfills.get_backfill(ctx, T, W, made["backfillId"])
    assert parent["state"] == "FAILED" and parent["partitionCounts"]["failed"] == 1
    status, child = backfills.retry_failed(ctx, T, W, made["backfillId"], {}, "retry-1")
    assert status == 201
    assert backfills.retry_failed(ctx, T, W, made["backfillId"], {}, "retry-1") == (
        200,
        {**child, "created": False},
    )
    work(ctx, queue)
    view = backfills.get_backfill(ctx, T, W, child["backfillId"])
    assert view["parentBackfillId"] == made["backfillId"]
    assert view["partitions"] == {"explicit": ["date=d:2025-01-03"]}
    assert view["state"] == "SUCCEEDED"
    keys = [
        r for r in events_of(ctx, RunTriggered) if r.trigger["backfill"]["backfill_id"] == child["backfillId"]
    ]
    assert len(keys) == 1
    with pytest.raises(Conflict) as caught:
        backfills.retry_failed(ctx, T, W, child["backfillId"], {}, "retry-2")
    assert caught.value.details["conflictType"] == "PARENT_NOT_FAILED"


def test_B6_B7_pause_stops_planning_resume_continues_and_moves_are_versioned(env: Env) -> None:
    ctx, _, queue = env
    _, made = create(ctx, partitions=days(1, 4), chunkSize=1, maxConcurrentRuns=1)
    bf = made["backfillId"]
    state = backfills.get_backfill(ctx, T, W, bf)
    assert (state["state"], state["stateVersion"]) == ("RUNNING", 2)
    assert backfills.move_backfill(ctx, T, W, bf, "pause", {"expectedStateVersion": 2}) == (
        202,
        {"backfillId": bf, "from": "RUNNING", "to": "PAUSED", "stateVersion": 3},
    )
    assert backfills.move_backfill(ctx, T, W, bf, "pause", {})[1]["changed"] is False
    work(ctx, queue)  # the planned chunk finishes; nothing new is planned
    assert len(events_of(ctx, RunTriggered)) == 1
    with pytest.raises(Conflict) as stale:
        backfills.move_backfill(ctx, T, W, bf, "resume", {"expectedStateVersion": 2})
    assert stale.value.details["conflictType"] == "VERSION_CONFLICT"
    assert backfills.move_backfill(ctx, T, W, bf, "resume", {})[0] == 202
    work(ctx, queue)
    assert len(events_of(ctx, RunTriggered)) == 4
    assert backfills.get_backfill(ctx, T, W, bf)["state"] == "SUCCEEDED"
    with pytest.raises(Conflict) as terminal:
        backfills.move_backfill(ctx, T, W, bf, "pause", {})
    assert terminal.value.details["conflictType"] == "ILLEGAL_TRANSITION"


def test_cancel_cancels_active_runs_and_leaves_unplanned_chunks_cancelled(env: Env) -> None:
    ctx, _, queue = env
    _, made = create(ctx, partitions=days(1, 4), chunkSize=2, maxConcurrentRuns=2)
    bf = made["backfillId"]
    assert backfills.move_backfill(ctx, T, W, bf, "cancel", {"reason": "wrong range"})[0] == 202
    assert len(events_of(ctx, RunCancelRequested)) == 2
    queue.take()  # the cancelled runs' tasks never start
    plan_backfills(ctx, T, W)
    view = backfills.get_backfill(ctx, T, W, bf)
    assert view["state"] == "CANCELLED"
    assert view["chunkCounts"]["cancelled"] == 2
    assert view["transitions"][-1] == {
        "from": "RUNNING", "to": "CANCELLED", "stateVersion": 3, "applied": True, "reason": "wrong range"
    }  # fmt: skip
    assert len(events_of(ctx, RunTriggered)) == 2


def rebuilt(ctx: ServiceContext, now_ms: int | None = None) -> ScheduleState:
    """The schedule tables rebuilt from the whole ledger, chunks settled from the rebuilt runs."""
    store = ctx.workspace_store(T, W)
    events = read_events(store, [m.name for m in store.list("ledger/")], T, W).events
    runs, _ = rebuild(store, tenant_id=T, workspace_id=W)
    states = {r: public_run_state(p.run, p.tasks.values()) for r, p in runs.runs.items() if p.run is not None}
    return rebuild_schedules(events, now_ms, states.get)


def test_the_live_backfill_tables_equal_a_rebuild(env: Env) -> None:
    ctx, _, queue = env
    _, made = create(ctx, partitions=days(1, 5), chunkSize=2, maxConcurrentRuns=2)
    work(ctx, queue, fail={"date=d:2025-01-02"})
    backfills.retry_failed(ctx, T, W, made["backfillId"], {}, "again")
    work(ctx, queue)
    live = refresh_schedules(ctx, T, W, settle=settler(ctx, T, W))
    again = rebuilt(ctx)
    assert (live.backfills, live.chunks) == (again.backfills, again.chunks)
    assert {r.state for r in live.backfills.values()} == {"FAILED", "SUCCEEDED"}


DAY_MS = 86_400_000


def test_a_backfill_shows_its_outcomes_after_its_requests_expired_and_goes_90_days_after_it_ended(
    env: Env,
) -> None:
    ctx, clock, queue = env
    _, made = create(ctx, partitions=days(1, 4), chunkSize=2, maxConcurrentRuns=4)
    bf = made["backfillId"]
    work(ctx, queue, fail={"date=d:2025-01-03"})
    _, paused = create(ctx, "k2", partitions=days(5, 6), chunkSize=1, maxConcurrentRuns=1)
    backfills.move_backfill(ctx, T, W, paused["backfillId"], "pause", {})
    work(ctx, queue)  # its planned chunk ends; it stays PAUSED
    shown = backfills.get_backfill(ctx, T, W, bf)
    chunks = backfills.list_chunks(ctx, T, W, bf, {})
    assert shown["state"] == "FAILED"

    clock.advance(31 * DAY_MS)  # the chunks' requests expire (30 days); the backfill stays (90)
    live = refresh_schedules(ctx, T, W, settle=settler(ctx, T, W))
    assert not any(r.startswith("chunk:") for r in live.requests)  # every chunk ended
    assert backfills.get_backfill(ctx, T, W, bf) == shown
    assert backfills.list_chunks(ctx, T, W, bf, {}) == chunks  # outcomes, request statuses, run ids
    _, child = backfills.retry_failed(ctx, T, W, bf, {}, "retry")
    assert backfills.get_backfill(ctx, T, W, child["backfillId"])["partitions"] == {
        "explicit": ["date=d:2025-01-03"]
    }
    work(ctx, queue)
    live = refresh_schedules(ctx, T, W, settle=settler(ctx, T, W))
    assert (live.backfills, live.chunks, live.requests) == _tables(rebuilt(ctx, clock.now_ms))

    clock.advance(59 * DAY_MS + 1)  # 90 days and 1 ms after it ended
    for read in (
        lambda: backfills.get_backfill(ctx, T, W, bf),
        lambda: backfills.list_chunks(ctx, T, W, bf, {}),
        lambda: backfills.retry_failed(ctx, T, W, bf, {}, "retry-late"),
        lambda: backfills.move_backfill(ctx, T, W, bf, "cancel", {}),
    ):
        with pytest.raises(NotFound):
            read()
    listed = backfills.list_backfills(ctx, T, W, {})["backfills"]
    assert [b["backfillId"] for b in listed] == [child["backfillId"], paused["backfillId"]]
    written = len(list(ctx.workspace_store(T, W).list("ledger/")))
    # A replayed create answers its backfill as before and brings nothing of it back.
    assert create(ctx, partitions=days(1, 4), chunkSize=2, maxConcurrentRuns=4) == (
        200,
        {"backfillId": bf, "created": False},
    )
    with pytest.raises(NotFound):
        backfills.get_backfill(ctx, T, W, bf)
    assert len(list(ctx.workspace_store(T, W).list("ledger/"))) == written
    live = refresh_schedules(ctx, T, W, settle=settler(ctx, T, W))
    assert not any(c.backfill_id == bf for c in live.chunks.values())
    assert (live.backfills, live.chunks, live.requests) == _tables(rebuilt(ctx, clock.now_ms))


def _tables(state: ScheduleState) -> tuple[Any, ...]:
    return state.backfills, state.chunks, state.requests


def _after_commit(ctx: ServiceContext) -> None:
    from servo.services.orchestrate import _plan_backfills

    _plan_backfills(ctx, T, W)


def _sweep(ctx: ServiceContext) -> None:
    from servo.services.timers import sweep

    sweep(ctx, {})


@pytest.mark.parametrize("repair", [_sweep, _after_commit])
def test_a_repair_pass_leaves_a_freshly_planned_chunk_to_the_pass_that_planned_it(
    env: Env, repair: Any
) -> None:
    """A sweep or an after-commit pass (another run ended) overlapping the pass that is submitting a
    chunk it just planned would trigger every one of its partitions a second time (the run_keys/
    reservation keeps one run each, at the cost of a whole second submission): it repairs a chunk
    only once it has waited."""
    from servo.core.backfills import backfill_id, chunk_run_requests
    from servo.core.events import BackfillChunkPlanned, BackfillCreated, RunRequestResolved, make_event
    from servo.services.ledger import append_events

    ctx, clock, _ = env
    bf = backfill_id(T, W, "slow-pass")
    keys = ("date=d:2025-01-01", "date=d:2025-01-02")
    requests = chunk_run_requests(bf, 0, keys, ["ns.a"], {})
    # What a planning pass writes before it submits: the backfill and its first chunk.
    written = [
        make_event(
            data, event_id=ctx.ids.new(clock.now_ms), timestamp_ms=clock.now_ms, tenant_id=T, workspace_id=W
        )
        for data in (
            BackfillCreated(bf, ("ns.a",), {"explicit": list(keys)}, keys, 2, 2),
            BackfillChunkPlanned(bf, 0, keys, {r.request_id: r.run_key for r in requests}),
        )
    ]
    refresh_schedules(ctx, T, W, append_events(ctx, T, W, written))
    clock.advance(5_000)
    repair(ctx)
    assert events_of(ctx, RunRequestResolved) == [] and events_of(ctx, RunTriggered) == []
    clock.advance(30_000)  # that pass died: the repair submits
    repair(ctx)
    assert sorted(r.run_key for r in events_of(ctx, RunTriggered)) == sorted(r.run_key for r in requests)
