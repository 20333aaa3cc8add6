"""Faults of the backfill flow (issue 20 item 7): a crash before and after every new write, and chunk
events duplicated and reordered. Whatever happens, the following sweeps end as a clean run does: every
chunk planned (none lost), each partition one run (none run twice for its chunk), the backfill SUCCEEDED.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servo.core.canonical_json import canonical_bytes
from servo.core.events import BackfillChunkPlanned, Event, RunTriggered, make_event
from servo.services import backfills
from servo.services._compaction_ledger import read_events
from servo.services.context import ServiceContext
from servo.services.ledger import append_events
from servo.services.manifests import deploy_manifest
from servo.services.timers import sweep
from servo.store import LocalFileStore

from tests.services.test_backfills import work
from tests.support.context import T0, FakeClock, RecordingQueue, make_context
from tests.support.faults import Crash, FaultPlan, FaultyStore, When, crash_plans, matching_writes

T, W = "acme", "prod"
DAY = {"name": "date", "kind": "time", "granularity": "day", "start": "2025-01-01"}
# Two chunks, one run at a time: the second is planned after the first one's run ends (after commit).
BODY = {"assets": ["ns.a"], "partitions": {"range": {"start": "2025-01-01", "end": "2025-01-02"}}}
SETTINGS = {"chunkSize": 1, "maxConcurrentRuns": 1}
# The backfill flow's writes: its reservation and projection ("other"), its events, the requests'
# outcomes and the runs they create (reservation, creation record, RunTriggered, PlanCreated).
NEW_WRITES = (
    r"^(other|run-key|run-creation|ledger:(Backfill\w+|RunRequestResolved|RunTriggered|PlanCreated))$"
)


def _world(tmp_path: Path) -> tuple[ServiceContext, FaultyStore, RecordingQueue]:
    ctx, _, queue = make_context(tmp_path, clock=FakeClock(T0))
    assets = [
        {"key": "ns.a", "id": "id-a", "partitioning": {"dimensions": [DAY]}, "execution": {"maxRetries": 0}}
    ]
    deploy_manifest(
        ctx, T, W, canonical_bytes({"manifestVersion": "1.0", "codeVersionId": "cv1", "assets": assets}), None
    )
    # Not durable: the suite makes hundreds of worlds, and a crash here is an exception, not a power cut.
    faulty = FaultyStore(LocalFileStore(tmp_path / ctx.settings.bucket, durable=False))
    return replace(ctx, store=faulty), faulty, queue


def _events(ctx: ServiceContext) -> list[Event]:
    store = ctx.workspace_store(T, W)
    return read_events(store, [m.name for m in store.list("ledger/orchestration/")], T, W).events


def _scenario(ctx: ServiceContext, queue: RecordingQueue) -> None:
    backfills.create_backfill(ctx, T, W, {**BODY, **SETTINGS}, "jan")
    work(ctx, queue)


def _recover(
    ctx: ServiceContext, queue: RecordingQueue, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The client retries its create, the sweep repairs, the worker runs what is queued."""
    for _ in range(3):
        backfills.create_backfill(ctx, T, W, body or {**BODY, **SETTINGS}, "jan")
        sweep(ctx, {})
        work(ctx, queue)
    (listed,) = backfills.list_backfills(ctx, T, W, {})["backfills"]
    return listed


def _assert_clean(ctx: ServiceContext, backfill: dict[str, Any], label: object) -> None:
    bf = backfill["backfillId"]
    assert backfill["state"] == "SUCCEEDED", (label, backfill)
    assert backfill["chunkCounts"]["succeeded"] == backfill["totalPartitions"], label
    runs = [e.data for e in _events(ctx) if isinstance(e.data, RunTriggered)]
    want = [f"backfill:{bf}:chunk:{i}:0" for i in range(backfill["totalPartitions"])]
    assert sorted(r.run_key for r in runs) == want, label


def _clean_writes(tmp_path: Path) -> int:
    ctx, faulty, queue = _world(tmp_path)
    _scenario(ctx, queue)
    return matching_writes(faulty, kind=NEW_WRITES)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_any_backfill_write_loses_no_chunk_and_runs_no_partition_twice(
    tmp_path: Path, when: When
) -> None:
    writes = _clean_writes(tmp_path / "clean")
    assert writes >= 20  # reservation, events, projection files and heads, four runs' creation
    for nth, plan in crash_plans(writes, when, kind=NEW_WRITES):
        ctx, faulty, queue = _world(tmp_path / f"{when}-{nth}")
        faulty.set_plan(plan)
        with contextlib.suppress(Crash):
            _scenario(ctx, queue)
        faulty.set_plan(FaultPlan())
        _assert_clean(ctx, _recover(ctx, queue), (when, nth))


def test_duplicated_and_reordered_chunk_events_plan_each_partition_once(tmp_path: Path) -> None:
    ctx, _, queue = _world(tmp_path)
    four = {
        **BODY,
        "partitions": {"range": {"start": "2025-01-01", "end": "2025-01-04"}},
        "maxConcurrentRuns": 2,
    }
    backfills.create_backfill(ctx, T, W, {**four, "chunkSize": 1}, "jan")
    planned = [e for e in _events(ctx) if isinstance(e.data, BackfillChunkPlanned)]
    assert [e.data.chunk_index for e in planned] == [0, 1]
    now, bf = ctx.clock_ms(), planned[0].data.backfill_id
    early = BackfillChunkPlanned(
        bf, 2, ("date=d:2025-01-03",), {f"chunk:{bf}:2:0": f"backfill:{bf}:chunk:2:0"}
    )

    def at(data: Any, ms: int) -> Event:
        return make_event(data, event_id=ctx.ids.new(ms), timestamp_ms=ms, tenant_id=T, workspace_id=W)

    copies = [
        at(planned[0].data, now),  # a duplicated planner: the same chunk again, later
        at(planned[1].data, T0 - 5_000),  # a slow writer: an id older than the original, visible only now
        at(early, now),  # the next chunk planned by a skewed planner before its turn
    ]
    for event in reversed(copies):
        append_events(ctx, T, W, [event])
    _assert_clean(ctx, _recover(ctx, queue, {**four, "chunkSize": 1}), "duplicates")


def test_concurrent_planners_plan_each_chunk_once_and_run_each_partition_once(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from servo.services.backfill_planner import plan_backfills

    ctx, _, queue = _world(tmp_path)
    four = {
        **BODY,
        "partitions": {"range": {"start": "2025-01-01", "end": "2025-01-04"}},
        "maxConcurrentRuns": 2,
    }
    backfills.create_backfill(ctx, T, W, {**four, "chunkSize": 1}, "jan")
    for _ in range(3):
        work(ctx, queue)
        with ThreadPoolExecutor(4) as pool:
            for future in [pool.submit(plan_backfills, ctx, T, W) for _ in range(4)]:
                with contextlib.suppress(Exception):  # a lost projection race is retried by the next pass
                    future.result()
    _assert_clean(ctx, _recover(ctx, queue, {**four, "chunkSize": 1}), "concurrent")
