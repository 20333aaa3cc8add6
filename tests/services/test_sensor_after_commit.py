"""Sensor results start their runs after commit (automation §6.3): the result callback records the result
in the ledger only; the compactor's act phase publishes the sensor state and submits the applied
evaluation's requests through the one run-request path; the sweep repairs a crash in between.

Compaction is driven by hand here, as the compactor function does for each finalize event, so the test
sees what the callback wrote apart from what the compactor did.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import pytest
from servo.core.events import RunTriggered
from servo.services._compaction_ledger import read_events
from servo.services.context import ServiceContext
from servo.services.sensor_sweep import sweep_sensors

from tests.services.sensor_support import (
    SECOND,
    T,
    W,
    compact_each,
    evaluations,
    ledger_names,
    poll_in_flight,
    report,
    tasks,
)
from tests.support.faults import Crash, CrashAt, FaultPlan, FaultyStore, When

TWO_REQUESTS = [{"runKey": "a.csv"}, {"runKey": "b.csv"}]
# What the compactor's act phase writes for a sensor result: the sensor projection, then per request
# the run key's reservation, the run's creation record and its events, then the outcomes, then the
# next evaluation's request and the projection again.
ACT_WRITES = r".*/(ledger/orchestration|run_keys|creations|automation)/.*"


def _run_keys(ctx: ServiceContext) -> list[str]:
    store = ctx.workspace_store(T, W)
    names = [m.name for m in store.list("ledger/orchestration/")]
    events = read_events(store, names, T, W).events
    return sorted(str(e.data.run_key) for e in events if isinstance(e.data, RunTriggered))


def _world(root: Path) -> tuple[ServiceContext, FaultyStore, dict[str, Any]]:
    ctx, _, _, faulty, task = poll_in_flight(root)
    return ctx, faulty, task


def test_the_callback_records_the_result_and_the_compactor_starts_one_run_per_request(
    tmp_path: Path,
) -> None:
    ctx, faulty, task = _world(tmp_path)
    before = set(ledger_names(ctx))
    report(ctx, task, status="TRIGGERED", runRequests=TWO_REQUESTS, log="looked")
    areas = {w.name.split("/")[2] for w in faulty.writes}
    assert areas <= {"ledger", "logs", "attempt_claims"}, areas  # §6.3: the callback keeps to these
    assert _run_keys(ctx) == []
    written = sorted(set(ledger_names(ctx)) - before)
    compact_each(ctx, written)  # no sweep
    assert _run_keys(ctx) == ["sensor:files:a.csv", "sensor:files:b.csv"]
    [evaluation] = evaluations(ctx, status="TRIGGERED")  # the next one is PENDING
    assert [r["status"] for r in evaluation["runRequests"]] == ["CREATED", "CREATED"]
    # A redelivered finalize event, then the sweeps: nothing twice.
    compact_each(ctx, written)
    sweep_sensors(ctx, T, W)
    assert _run_keys(ctx) == ["sensor:files:a.csv", "sensor:files:b.csv"]


def _act_writes(root: Path) -> int:
    ctx, faulty, task = _world(root)
    before = set(ledger_names(ctx))
    report(ctx, task, status="TRIGGERED", runRequests=TWO_REQUESTS)
    start = len(faulty.writes)
    compact_each(ctx, sorted(set(ledger_names(ctx)) - before))
    return sum(1 for w in faulty.writes[start:] if re.fullmatch(ACT_WRITES, w.name))


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_between_commit_and_any_submission_write_is_repaired_by_the_sweep_never_twice(
    tmp_path: Path, when: When
) -> None:
    writes = _act_writes(tmp_path / "clean")
    assert writes >= 7  # the projection, two reservations, two creations, two runs' events, outcomes
    for nth in range(1, writes + 1):
        ctx, clock, queue, faulty, task = poll_in_flight(tmp_path / f"{when}-{nth}")
        before = set(ledger_names(ctx))
        report(ctx, task, status="TRIGGERED", runRequests=TWO_REQUESTS)
        written = sorted(set(ledger_names(ctx)) - before)
        faulty.set_plan(FaultPlan(crashes=(CrashAt(ACT_WRITES, nth, when),)))
        with contextlib.suppress(Crash):
            compact_each(ctx, written)
        faulty.set_plan(FaultPlan())
        sweep_sensors(ctx, T, W)
        sweep_sensors(ctx, T, W)  # a duplicated sweep changes nothing
        assert _run_keys(ctx) == ["sensor:files:a.csv", "sensor:files:b.csv"], (when, nth)
        [evaluation] = evaluations(ctx, status="TRIGGERED")
        assert [r["status"] for r in evaluation["runRequests"]] == ["CREATED", "CREATED"], (when, nth)
        # The next poll (§6.2), whether the act phase requested it before dying or the sweep once due:
        # one evaluation, one task, whatever write the act phase died at.
        clock.advance(31 * SECOND)
        sweep_sensors(ctx, T, W)
        sweep_sensors(ctx, T, W)
        [nxt] = tasks(queue)
        assert nxt["evaluationId"] == "files:v1:1", (when, nth)
        report(ctx, nxt)
        statuses = [e["status"] for e in evaluations(ctx)]
        assert statuses == ["SKIPPED", "TRIGGERED"], (when, nth)
