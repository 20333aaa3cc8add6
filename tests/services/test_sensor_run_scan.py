"""Run-status items past the newest 200 runs (automation §6.2): every run that turns terminal is looked
at, however many end between two sweeps, each becomes one item once, across sweeps and crashes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from servo.services import sensor_run_scan
from servo.services.callbacks import task_completed, task_started
from servo.services.orchestrate import compact_and_act
from servo.services.sensor_sweep import sweep_sensors
from servo.services.trigger import trigger_run

from tests.services.sensor_support import T, W, deploy, report, run_status
from tests.services.sensor_support import tasks as queued
from tests.support.context import FakeClock, make_context

BURST = 260


def fail_burst(root: Path, clock: FakeClock, n: int) -> set[str]:
    """``n`` runs that start and fail between two sweeps (compacted together, as a busy minute is): the
    ``run:`` items they should give."""
    ctx, _, queue = make_context(root, clock=clock, compact=False)
    runs = {trigger_run(ctx, T, W, {"selection": ["ns.a"]})[1]["runId"] for _ in range(n)}
    compact_and_act(ctx, T, W)
    for task in queue.take():
        envelope = json.loads(task.body)
        headers = {"authorization": f"Bearer {envelope['taskToken']}"}
        ids = {"attempt": envelope["attempt"], "attemptId": envelope["attemptId"], "workerId": "w1"}
        task_started(ctx, envelope["taskId"], headers, ids)
        error = {"category": "USER_CODE", "message": "boom", "retryable": False}
        task_completed(ctx, envelope["taskId"], headers, {**ids, "outcome": "FAILED", "error": error})
    compact_and_act(ctx, T, W)
    return {f"run:{r}" for r in runs}


@pytest.mark.parametrize("page,pages", [(200, 5), (20, 2)])
def test_a_burst_of_260_failed_runs_gives_one_item_each_across_sweeps_and_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: int, pages: int
) -> None:
    monkeypatch.setattr(sensor_run_scan, "RUN_SCAN_LIMIT", page)
    monkeypatch.setattr(sensor_run_scan, "RUN_SCAN_PAGES", pages)
    ctx, clock, queue = make_context(tmp_path)
    deploy(ctx, run_status(defaultEnabled=True))
    sweep_sensors(ctx, T, W)
    failed = fail_burst(tmp_path, clock, BURST)
    delivered: Counter[str] = Counter()
    save = sensor_run_scan.save_scan

    def crash_once(*args: object) -> None:
        monkeypatch.setattr(sensor_run_scan, "save_scan", save)
        raise RuntimeError("crash after the items, before the scan state")

    monkeypatch.setattr("servo.services.sensor_sweep.save_scan", crash_once)
    with pytest.raises(RuntimeError):
        sweep_sensors(ctx, T, W)
    monkeypatch.setattr("servo.services.sensor_sweep.save_scan", save)
    for _ in range(40):
        clock.advance(60_000)
        sweep_sensors(ctx, T, W)
        for task in queued(queue):
            delivered.update(item["itemId"] for item in task["items"])
            report(ctx, task, status="SKIPPED")
        if set(delivered) == failed:
            break
    for _ in range(3):  # and more sweeps find nothing new
        clock.advance(60_000)
        assert sweep_sensors(ctx, T, W)["evaluations"] == 0
    assert set(delivered) == failed and set(delivered.values()) == {1}
