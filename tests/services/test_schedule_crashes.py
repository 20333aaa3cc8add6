"""A crash before and after every write of the schedule sweep, then the next sweep (issue 18 item 6).

Whatever write the sweep dies at (a tick, the run_key reservation, the run's events, the request's
outcome, the projection's files or head), the following sweeps end exactly as a clean one: each due
instant one tick, each TRIGGERED tick one run and one outcome naming it, no second run.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import pytest
from servo.core.canonical_json import canonical_bytes
from servo.core.events import RunTriggered
from servo.services import schedules
from servo.services._compaction_ledger import read_events
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.schedule_sweep import sweep_schedules

from tests.support.context import T0, FakeClock, make_context
from tests.support.faults import Crash, FaultPlan, FaultyStore, When, crash_plans, matching_writes

T, W = "acme", "prod"
# The sweep's own writes; compaction (state/) has its own crash suite.
SWEEP_WRITES = r".*/(ledger/orchestration|run_keys|automation)/.*"
MANIFEST = {
    "manifestVersion": "1.0",
    "codeVersionId": "cv1",
    "assets": [{"key": "ns.a", "id": "id-a"}],
    "schedules": [{"id": "every", "cron": "* * * * *", "target": ["ns.a"], "defaultEnabled": True}],
}


def _world(tmp_path: Path) -> tuple[ServiceContext, FaultyStore, FakeClock]:
    clock = FakeClock(T0 - 1000)
    ctx, _, _ = make_context(tmp_path, clock=clock)
    deploy_manifest(ctx, T, W, canonical_bytes(MANIFEST), None)
    faulty = FaultyStore(ctx.store)
    clock.now_ms = T0 + 90_000  # two due instants
    return replace(ctx, store=faulty), faulty, clock


def _outcome(ctx: ServiceContext) -> tuple[list[tuple[str, str, str]], list[str]]:
    ticks = schedules.list_ticks(ctx, T, W, "every", {})["ticks"]
    store = ctx.workspace_store(T, W)
    names = [m.name for m in store.list("ledger/orchestration/")]
    runs = [e.data.run_id for e in read_events(store, names, T, W).events if isinstance(e.data, RunTriggered)]
    return [(t["tickId"], t["status"], t.get("requestStatus", "")) for t in ticks], sorted(runs)


def _clean_writes(tmp_path: Path) -> int:
    ctx, faulty, _ = _world(tmp_path)
    sweep_schedules(ctx, T, W)
    return matching_writes(faulty, f"^{SWEEP_WRITES}$")


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_any_sweep_write_converges_to_one_tick_and_one_run_per_instant(
    tmp_path: Path, when: When
) -> None:
    writes = _clean_writes(tmp_path / "clean")
    assert writes >= 6  # two ticks, reservations, run events, outcomes, projection files and head
    for nth, plan in crash_plans(writes, when, f"^{SWEEP_WRITES}$"):
        ctx, faulty, _ = _world(tmp_path / f"{when}-{nth}")
        faulty.set_plan(plan)
        with contextlib.suppress(Crash):
            sweep_schedules(ctx, T, W)
        faulty.set_plan(FaultPlan())
        sweep_schedules(ctx, T, W)
        sweep_schedules(ctx, T, W)  # a duplicated sweep changes nothing
        ticks, runs = _outcome(ctx)
        assert ticks == [
            ("every:1800000060", "TRIGGERED", "CREATED"),
            ("every:1800000000", "TRIGGERED", "CREATED"),
        ], (when, nth)
        tick_runs = sorted(t["runId"] for t in schedules.list_ticks(ctx, T, W, "every", {})["ticks"])
        assert runs == tick_runs, (when, nth)  # one run per tick, each named by its tick


def test_concurrent_sweeps_record_each_tick_once_and_start_one_run_per_tick(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ctx, _, _ = _world(tmp_path)
    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(sweep_schedules, ctx, T, W) for _ in range(4)]:
            with contextlib.suppress(Exception):  # a lost projection race is retried by the next sweep
                future.result()
    sweep_schedules(ctx, T, W)
    ticks, runs = _outcome(ctx)
    assert [t[:2] for t in ticks] == [("every:1800000060", "TRIGGERED"), ("every:1800000000", "TRIGGERED")]
    assert {t[2] for t in ticks} == {"CREATED"}  # a losing submitter finds its own reservation
    tick_runs = sorted(t["runId"] for t in schedules.list_ticks(ctx, T, W, "every", {})["ticks"])
    assert runs == tick_runs
