"""Sensor faults (automation §6.8, H2, H3): a crash before and after every new write of each sensor flow
(the sweep's request, the worker's result, a push), duplicated push deliveries and concurrent sweeps.

Whatever write a flow dies at, the retry (Cloud Tasks redelivering the result, Pub/Sub redelivering the
message, the next sweep) ends exactly as a clean run: one evaluation, one run per run key, no second run.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servo.core.errors import CallbackRejected
from servo.core.events import RunTriggered
from servo.services import sensors
from servo.services._compaction_ledger import read_events
from servo.services.context import ServiceContext
from servo.services.sensor_sweep import sweep_sensors

from tests.services.sensor_support import T, W, deploy, evaluations, poll, push, report, tasks
from tests.support.context import RecordingQueue, make_context
from tests.support.faults import Crash, CrashAt, FaultPlan, FaultyStore, When

# The flows' own writes; compaction (state/) has its own crash suite.
SENSOR_WRITES = r".*/(ledger/orchestration|run_keys|automation|logs|attempt_claims)/.*"
ENVELOPE = {"message": {"messageId": "m1", "data": "aGk="}}


def _runs(ctx: ServiceContext) -> list[str]:
    store = ctx.workspace_store(T, W)
    names = [m.name for m in store.list("ledger/orchestration/")]
    events = read_events(store, names, T, W).events
    return sorted(str(e.data.run_key) for e in events if isinstance(e.data, RunTriggered))


def _poll_world(root: Path) -> tuple[ServiceContext, FaultyStore, RecordingQueue, dict[str, Any]]:
    ctx, _, queue = make_context(root)
    deploy(ctx, poll(defaultEnabled=True))
    sweep_sensors(ctx, T, W)
    [task] = tasks(queue)
    faulty = FaultyStore(ctx.store)
    return replace(ctx, store=faulty), faulty, queue, task


def _report_flow(ctx: ServiceContext, task: dict[str, Any]) -> None:
    report(
        ctx,
        task,
        status="TRIGGERED",
        cursorUpdated=True,
        cursor="c1",
        runRequests=[{"runKey": "k"}],
        log="hi",
    )


def _writes(flow: Callable[[ServiceContext], None], ctx: ServiceContext, faulty: FaultyStore) -> int:
    flow(ctx)
    return sum(1 for w in faulty.writes if re.fullmatch(SENSOR_WRITES, w.name))


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_any_write_of_a_result_converges_to_one_applied_evaluation_and_one_run(
    tmp_path: Path, when: When
) -> None:
    ctx, faulty, _, task = _poll_world(tmp_path / "clean")
    writes = _writes(lambda c: _report_flow(c, task), ctx, faulty)
    assert writes >= 5  # the result, its log, the projections, the reservation, the run, the outcome
    for nth in range(1, writes + 1):
        ctx, faulty, _, task = _poll_world(tmp_path / f"{when}-{nth}")
        faulty.set_plan(FaultPlan(crashes=(CrashAt(SENSOR_WRITES, nth, when),)))
        with contextlib.suppress(Crash):
            _report_flow(ctx, task)
        faulty.set_plan(FaultPlan())
        with contextlib.suppress(CallbackRejected):  # the redelivered report: 409 once it was recorded
            _report_flow(ctx, task)
        sweep_sensors(ctx, T, W)
        sweep_sensors(ctx, T, W)  # a duplicated sweep changes nothing
        by_id = {e["evaluationId"]: e for e in evaluations(ctx)}
        evaluation = by_id.pop("files:v0:1")
        assert evaluation["status"] == "TRIGGERED", (when, nth)
        # The next one, if the act phase after commit got to request it before the crash.
        assert {k: e["status"] for k, e in by_id.items()} in ({}, {"files:v1:1": "PENDING"}), (when, nth)
        assert [r["status"] for r in evaluation["runRequests"]] == ["CREATED"], (when, nth)
        assert _runs(ctx) == ["sensor:files:k"], (when, nth)
        assert sensors.get_sensor(ctx, T, W, "files")["cursor"] == "c1"


def _sweep_world(root: Path) -> tuple[ServiceContext, FaultyStore, RecordingQueue]:
    # No compactor after the deploy (its finalize event lost): the sweep requests the evaluation.
    ctx, _, queue = make_context(root, compact=False)
    deploy(ctx, poll(defaultEnabled=True))
    faulty = FaultyStore(ctx.store)
    return replace(ctx, store=faulty), faulty, queue


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_any_write_of_the_sweep_leaves_one_evaluation_whose_task_is_enqueued(
    tmp_path: Path, when: When
) -> None:
    ctx, faulty, _ = _sweep_world(tmp_path / "clean")
    writes = _writes(lambda c: sweep_sensors(c, T, W), ctx, faulty)
    assert writes >= 2  # the request and the projection
    for nth in range(1, writes + 1):
        ctx, faulty, queue = _sweep_world(tmp_path / f"{when}-{nth}")
        faulty.set_plan(FaultPlan(crashes=(CrashAt(SENSOR_WRITES, nth, when),)))
        with contextlib.suppress(Crash):
            sweep_sensors(ctx, T, W)
        faulty.set_plan(FaultPlan())
        sweep_sensors(ctx, T, W)
        sweep_sensors(ctx, T, W)
        assert [e["evaluationId"] for e in evaluations(ctx)] == ["files:v0:1"], (when, nth)
        assert {t["evaluationId"] for t in tasks(queue)} == {"files:v0:1"}, (when, nth)


def _push_world(root: Path) -> tuple[ServiceContext, FaultyStore, RecordingQueue]:
    ctx, _, queue = make_context(root)
    deploy(ctx, push(defaultEnabled=True))
    faulty = FaultyStore(ctx.store)
    return replace(ctx, store=faulty), faulty, queue


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_any_write_of_a_push_then_redelivery_gives_one_item_one_evaluation_one_run(
    tmp_path: Path, when: When
) -> None:
    ctx, faulty, _ = _push_world(tmp_path / "clean")
    writes = _writes(lambda c: sensors.receive_push(c, T, W, "inbox", ENVELOPE), ctx, faulty)
    assert writes >= 3  # the message, the projection, the evaluation request
    for nth in range(1, writes + 1):
        ctx, faulty, queue = _push_world(tmp_path / f"{when}-{nth}")
        faulty.set_plan(FaultPlan(crashes=(CrashAt(SENSOR_WRITES, nth, when),)))
        with contextlib.suppress(Crash):
            sensors.receive_push(ctx, T, W, "inbox", ENVELOPE)
        faulty.set_plan(FaultPlan())
        sensors.receive_push(ctx, T, W, "inbox", ENVELOPE)  # Pub/Sub redelivers: nothing acked it
        sweep_sensors(ctx, T, W)
        enqueued = {t["evaluationId"]: t for t in tasks(queue)}
        assert list(enqueued) == ["inbox:v0:1"], (when, nth)
        report(ctx, enqueued["inbox:v0:1"], status="TRIGGERED", runRequests=[{"itemId": "msg:m1"}])
        assert _runs(ctx) == ["sensor:inbox:msg:m1:0"], (when, nth)


def test_duplicated_push_deliveries_at_once_record_one_message_and_start_one_run(tmp_path: Path) -> None:
    ctx, _, queue = make_context(tmp_path)
    deploy(ctx, push(defaultEnabled=True))
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: sensors.receive_push(ctx, T, W, "inbox", ENVELOPE)["status"], range(4))
        )
    assert sorted(answers).count("RECORDED") >= 1 and set(answers) <= {"RECORDED", "DUPLICATE"}
    sweep_sensors(ctx, T, W)
    evaluated = {t["evaluationId"]: t for t in tasks(queue)}
    assert list(evaluated) == ["inbox:v0:1"]
    report(ctx, evaluated["inbox:v0:1"], status="TRIGGERED", runRequests=[{"itemId": "msg:m1"}])
    [evaluation] = evaluations(ctx, "inbox")
    assert evaluation["items"] == ["msg:m1"] and _runs(ctx) == ["sensor:inbox:msg:m1:0"]


def test_concurrent_sweeps_request_each_evaluation_once(tmp_path: Path) -> None:
    ctx, _, queue = make_context(tmp_path, compact=False)  # the sweeps, not the compactor, request
    deploy(ctx, poll(defaultEnabled=True), poll("other", defaultEnabled=True))
    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(sweep_sensors, ctx, T, W) for _ in range(4)]:
            with contextlib.suppress(Exception):  # a lost projection race is retried by the next sweep
                future.result()
    sweep_sensors(ctx, T, W)
    assert [e["evaluationId"] for e in evaluations(ctx)] == ["files:v0:1"]
    assert sorted(t["evaluationId"] for t in tasks(queue)) == ["files:v0:1", "other:v0:1"]


def test_two_results_from_one_stale_state_at_once_apply_one_and_start_one_run(tmp_path: Path) -> None:
    ctx, _, queue = make_context(tmp_path)
    deploy(ctx, poll(defaultEnabled=True))
    sweep_sensors(ctx, T, W)
    sensors.evaluate_sensor(ctx, T, W, "files", {}, "k")
    pending = tasks(queue)
    with ThreadPoolExecutor(2) as pool:
        list(
            pool.map(
                lambda t: report(ctx, t, status="TRIGGERED", runRequests=[{"runKey": t["evaluationId"][-1]}]),
                pending,
            )
        )
    sweep_sensors(ctx, T, W)
    # (The next evaluation, files:v1:1, is requested after commit once the step is settled.)
    statuses = sorted(e["status"] for e in evaluations(ctx) if e["evaluationId"] != "files:v1:1")
    assert statuses == ["SKIPPED_STALE", "TRIGGERED"]
    assert len(_runs(ctx)) == 1 and sensors.get_sensor(ctx, T, W, "files")["stateVersion"] == 1
