"""The compactor requests a sensor's next evaluation after commit (automation §6.2): once a result is
applied (or the sensor enabled), its act phase appends the next ``SensorEvaluationRequested`` and
enqueues its Cloud Task for ``not_before`` (a POLL one interval after the last evaluation, an error's
interval being its backoff), under the deterministic id and task name the sweep would use. So a poll
sensor is evaluated every interval with no sweep at all; the sweep only repairs (a crash between
commit and enqueue), and whichever of the two comes second is deduplicated.

The worker's part is played by the test, behind a queue that honours ``schedule_time`` as Cloud Tasks
(and the embedded dispatcher) do: a task is delivered once the injected clock reaches it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servo.core.errors import CallbackRejected
from servo.core.events import SensorEvaluationRequested
from servo.core.sensors import evaluation_task_name
from servo.dispatch import EnqueueOutcome, HttpTask
from servo.services import sensors
from servo.services._compaction_ledger import read_events
from servo.services.context import ServiceContext
from servo.services.sensor_projection import refresh_sensors
from servo.services.sensor_sweep import request_next_evaluations, sweep_sensors

from tests.services.sensor_support import (
    SECOND,
    T,
    W,
    compact_each,
    deploy,
    evaluations,
    ledger_names,
    poll,
    poll_in_flight,
    push,
    report,
    show,
    tasks,
)
from tests.support.context import T0, FakeClock, RecordingQueue, make_context
from tests.support.faults import Crash


class Worker:
    """The worker behind a queue that honours ``schedule_time``: it gets each evaluation task once the
    clock reaches the task's time, and reports a result for it."""

    def __init__(self, ctx: ServiceContext, clock: FakeClock, queue: RecordingQueue) -> None:
        self.ctx, self.clock, self.queue = ctx, clock, queue
        self.waiting: list[dict[str, Any]] = []
        self.delivered: list[tuple[int, str]] = []  # (clock at delivery, evaluation id)

    def due(self) -> list[dict[str, Any]]:
        self.waiting += tasks(self.queue)
        ready = [t for t in self.waiting if (t["scheduleTimeMs"] or 0) <= self.clock.now_ms]
        self.waiting = [t for t in self.waiting if t not in ready]
        self.delivered += [(self.clock.now_ms, t["evaluationId"]) for t in ready]
        return ready

    def run(self, seconds: int, **result: Any) -> None:
        """Second by second: deliver what is due and report ``result`` for it."""
        for _ in range(seconds):
            for task in self.due():
                report(self.ctx, task, **result)
            self.clock.advance(SECOND)


def _requested(ctx: ServiceContext) -> list[SensorEvaluationRequested]:
    store = ctx.workspace_store(T, W)
    events = read_events(store, ledger_names(ctx), T, W).events
    return [e.data for e in events if isinstance(e.data, SensorEvaluationRequested)]


def test_a_poll_sensor_is_evaluated_every_interval_without_any_sweep(tmp_path: Path) -> None:
    ctx, clock, queue = make_context(tmp_path)  # the compactor acts after every ledger write
    deploy(ctx, poll())
    worker = Worker(ctx, clock, queue)
    assert worker.due() == []  # paused: nothing requested
    sensors.set_sensor_enabled(ctx, T, W, "files", True)
    worker.run(95, status="SKIPPED")
    seconds = [(at - T0) // SECOND for at, _ in worker.delivered]
    assert seconds == [0, 30, 60, 90]
    assert [e for _, e in worker.delivered] == ["files:v1:1", "files:v2:1", "files:v3:1", "files:v4:1"]
    statuses = [e["status"] for e in evaluations(ctx)]
    assert statuses == ["PENDING", "SKIPPED", "SKIPPED", "SKIPPED", "SKIPPED"]  # the next one waits
    assert show(ctx)["inFlightEvaluationId"] == "files:v5:1"


def test_an_error_is_evaluated_again_one_interval_later_at_the_next_attempt(tmp_path: Path) -> None:
    ctx, clock, queue = make_context(tmp_path)
    deploy(ctx, poll(defaultEnabled=True))
    worker = Worker(ctx, clock, queue)
    clock.advance(5 * SECOND)
    worker.run(40, status="ERROR", error="boom")
    seconds = [(at - T0) // SECOND for at, _ in worker.delivered]
    assert seconds == [5, 35]  # the interval is the backoff
    assert [e for _, e in worker.delivered] == ["files:v0:1", "files:v0:2"]  # same version, attempt + 1
    assert [t["scheduleTimeMs"] for t in worker.waiting] == [T0 + 65 * SECOND]


def _report(ctx: ServiceContext, task: dict[str, Any], **result: Any) -> list[str]:
    """Report a result; the ledger objects it wrote (the compactor's finalize events)."""
    before = set(ledger_names(ctx))
    report(ctx, task, **result)
    return sorted(set(ledger_names(ctx)) - before)


def test_the_compactor_requests_the_next_poll_for_one_interval_after_the_result(tmp_path: Path) -> None:
    ctx, clock, queue, _, task = poll_in_flight(tmp_path)
    clock.advance(3 * SECOND)
    written = _report(ctx, task)
    assert tasks(queue) == []  # the callback only records
    compact_each(ctx, written)
    [nxt] = tasks(queue)
    assert nxt["evaluationId"] == "files:v1:1" and nxt["taskName"] == evaluation_task_name("files:v1:1")
    assert nxt["scheduleTimeMs"] == T0 + 33 * SECOND
    assert show(ctx)["inFlightEvaluationId"] == "files:v1:1"
    # A redelivered finalize event and the sweeps, early and when due: nothing requested twice.
    compact_each(ctx, written)
    sweep_sensors(ctx, T, W)
    clock.advance(31 * SECOND)
    assert sweep_sensors(ctx, T, W)["evaluations"] == 0
    assert tasks(queue) == []  # the sweep's repair enqueue is the same name
    assert [r.evaluation_id for r in _requested(ctx)] == ["files:v0:1", "files:v1:1"]


def test_a_sweep_first_then_the_compactor_make_one_evaluation(tmp_path: Path) -> None:
    ctx, clock, queue, _, task = poll_in_flight(tmp_path)
    written = _report(ctx, task)
    clock.advance(31 * SECOND)
    sweep_sensors(ctx, T, W)  # the finalize event comes late: the sweep requests the next poll
    [nxt] = tasks(queue)
    compact_each(ctx, written)
    assert tasks(queue) == []
    report(ctx, nxt)
    assert [r.evaluation_id for r in _requested(ctx)] == ["files:v0:1", "files:v1:1"]
    assert [e["status"] for e in evaluations(ctx)] == ["SKIPPED", "SKIPPED"]


def test_the_sweep_and_the_compactor_requesting_from_the_same_state_make_one_evaluation(
    tmp_path: Path,
) -> None:
    ctx, clock, queue, _, task = poll_in_flight(tmp_path)
    written = _report(ctx, task)
    clock.advance(31 * SECOND)
    # Both read the state before either appends its request: two request events, one evaluation.
    stale = refresh_sensors(ctx, T, W, written)
    sweep_sensors(ctx, T, W)
    request_next_evaluations(ctx, T, W, stale, ["files"])
    assert [r.evaluation_id for r in _requested(ctx)] == ["files:v0:1", "files:v1:1", "files:v1:1"]
    [nxt] = tasks(queue)  # one task name
    report(ctx, nxt)
    assert [(e["evaluationId"], e["status"]) for e in evaluations(ctx)] == [
        ("files:v1:1", "SKIPPED"),
        ("files:v0:1", "SKIPPED"),
    ]
    with pytest.raises(CallbackRejected, match="already"):
        report(ctx, nxt)


class LosesOneEnqueue(RecordingQueue):
    """The process dies between the ledger's commit and the Cloud Task: the first enqueue fails."""

    failed: bool = False

    def enqueue(self, queue: str, task: HttpTask) -> EnqueueOutcome:
        if not self.failed:
            self.failed = True
            raise Crash("died before enqueueing")
        return super().enqueue(queue, task)


def test_a_crash_between_the_request_and_its_task_is_repaired_by_the_next_sweep(tmp_path: Path) -> None:
    ctx, _, _, _, task = poll_in_flight(tmp_path)
    written = _report(ctx, task)
    queue = LosesOneEnqueue()
    ctx = replace(ctx, queue=queue)
    compact_each(ctx, written)
    assert queue.failed and tasks(queue) == []
    assert show(ctx)["inFlightEvaluationId"] == "files:v1:1"  # requested, never enqueued
    sweep_sensors(ctx, T, W)  # before it is due: the in-flight evaluation's task again
    [nxt] = tasks(queue)
    assert nxt["evaluationId"] == "files:v1:1" and nxt["scheduleTimeMs"] == T0 + 30 * SECOND


def test_a_disabled_sensor_gets_no_next_request(tmp_path: Path) -> None:
    ctx, clock, queue, _, task = poll_in_flight(tmp_path)
    written = _report(ctx, task)
    before = set(ledger_names(ctx))
    sensors.set_sensor_enabled(ctx, T, W, "files", False)  # paused before the compactor ran
    compact_each(ctx, written + sorted(set(ledger_names(ctx)) - before))
    assert tasks(queue) == []
    assert [r.evaluation_id for r in _requested(ctx)] == ["files:v0:1"]
    # Enabled again: requested at once, the interval after the last evaluation having passed.
    clock.advance(31 * SECOND)
    before = set(ledger_names(ctx))
    sensors.set_sensor_enabled(ctx, T, W, "files", True)
    compact_each(ctx, sorted(set(ledger_names(ctx)) - before))
    [nxt] = tasks(queue)
    assert nxt["evaluationId"] == "files:v3:1" and nxt["scheduleTimeMs"] is None


def test_a_stale_result_requests_nothing_while_paused(tmp_path: Path) -> None:
    ctx, _, queue, _, task = poll_in_flight(tmp_path)
    before = set(ledger_names(ctx))
    sensors.set_sensor_enabled(ctx, T, W, "files", False)  # the in-flight evaluation goes stale
    compact_each(ctx, sorted(set(ledger_names(ctx)) - before))
    compact_each(ctx, _report(ctx, task, status="TRIGGERED", runRequests=[{"runKey": "a"}]))
    assert tasks(queue) == []
    assert [e["status"] for e in evaluations(ctx)] == ["SKIPPED_STALE"]


def test_push_messages_that_arrived_during_an_evaluation_are_requested_after_its_result(
    tmp_path: Path,
) -> None:
    ctx, _, queue = make_context(tmp_path)
    deploy(ctx, push(defaultEnabled=True))
    sensors.receive_push(ctx, T, W, "inbox", {"message": {"messageId": "m0", "data": ""}})
    [first] = tasks(queue)
    for m in ("m1", "m2"):
        sensors.receive_push(ctx, T, W, "inbox", {"message": {"messageId": m, "data": ""}})
    assert tasks(queue) == []  # one in flight at most
    report(ctx, first)
    [second] = tasks(queue)  # no sweep
    assert [i["itemId"] for i in second["items"]] == ["msg:m1", "msg:m2"]
    assert second["scheduleTimeMs"] is None
