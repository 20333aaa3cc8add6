"""One handler per event type (behavior §2 with design §6 overrides). Fold internals.

A handler returns True when the event applied and False when it was rejected; only applied events
consume their idempotency key, so a fact rejected now cannot block the same key forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from servo.core.canonical_json import canonical_dumps
from servo.core.events import (
    DispatchEnqueued,
    DispatchRequested,
    Event,
    PlanCreated,
    RunCancelRequested,
    RunTimedOut,
    RunTriggered,
    TaskFinished,
    TaskHeartbeat,
    TaskOutputVisibilityChanged,
    TaskStarted,
    TimerEnqueued,
    TimerFired,
    TimerRequested,
)
from servo.core.fold_context import FoldContext, final_run_state, is_terminal
from servo.core.ids import dispatch_id, parse_dispatch_id, parse_timer_id
from servo.core.lineage import execution_lineage_ref, reported_int, reported_str
from servo.core.retry import is_retryable, retry_not_before_ms
from servo.core.rows import DepRow, OutboxRow, RunRow, TaskRow, TimerRow, replace_row, row_maker
from servo.core.states import RUN_TERMINAL, TASK_DISPATCHABLE, TASK_FINISHABLE, RunState, TaskState
from servo.core.taskdef import DEFAULT_WORKER_QUEUE

_DISPATCHABLE = frozenset(s.value for s in TASK_DISPATCHABLE)
_FINISHABLE = frozenset(s.value for s in TASK_FINISHABLE)
_RUN_TERMINAL = frozenset(s.value for s in RUN_TERMINAL)
_TIMER_KIND = {"retry": "RETRY", "heartbeat": "HEARTBEAT_CHECK", "sla": "SLA_CHECK", "cron": "CRON"}
# Rows are made by their fast constructors (servo.core.rows.row_maker): a plan makes one a task.
_run_row, _task_row, _dep_row = row_maker(RunRow), row_maker(TaskRow), row_maker(DepRow)
_outbox_row, _timer_row_of = row_maker(OutboxRow), row_maker(TimerRow)


def _run_triggered(ctx: FoldContext, d: RunTriggered) -> bool:
    if ctx.p.run is not None:
        return False
    tasks = list(ctx.p.tasks.values())
    # PlanCreated may have been folded first: counters are recomputed from the tasks already there.
    counts = {s: sum(1 for t in tasks if t.state == s.value) for s in TaskState}
    run = _run_row(
        run_id=d.run_id,
        plan_id=d.plan_id,
        state=(RunState.RUNNING if tasks else RunState.TRIGGERED).value,
        run_key=d.run_key,
        cancel_requested=False,
        tasks_total=len(tasks),
        tasks_completed=sum(1 for t in tasks if is_terminal(t)),
        tasks_succeeded=counts[TaskState.SUCCEEDED],
        tasks_failed=counts[TaskState.FAILED],
        tasks_skipped=counts[TaskState.SKIPPED],
        tasks_cancelled=counts[TaskState.CANCELLED],
        triggered_at=ctx.ts,
        completed_at=None,
        labels=canonical_dumps(d.labels) if d.labels else None,
        code_version=d.code_version,
        timeout_at=ctx.ts + d.timeout_seconds * 1000 if d.timeout_seconds is not None else None,
        traceparent=d.traceparent,
        trigger_type=str(d.trigger["type"]) if isinstance(d.trigger.get("type"), str) else None,
        trigger_json=canonical_dumps(d.trigger) if d.trigger else None,
        row_version=ctx.event_id,
    )
    if tasks and run.tasks_completed == run.tasks_total:
        run = replace_row(run, state=final_run_state(run).value, completed_at=ctx.ts)
    ctx.p.run = run
    return True


def _plan_created(ctx: FoldContext, d: PlanCreated) -> bool:
    if ctx.p.tasks:
        return False
    run = ctx.p.run
    # A run cancelled or timed out before its plan arrived gets its tasks already cancelled.
    dead = run is not None and run.state in _RUN_TERMINAL
    for t in d.tasks:
        state = TaskState.CANCELLED if dead else (TaskState.BLOCKED if t.depends_on else TaskState.READY)
        ctx.p.tasks[t.key] = _task_row(
            run_id=d.run_id,
            task_key=t.key,
            state=state.value,
            attempt=0,
            attempt_id=None,
            started_at=None,
            completed_at=ctx.ts if dead else None,
            error_message=None,
            deps_total=len(t.depends_on),
            deps_satisfied_count=0,
            max_attempts=t.max_attempts,
            heartbeat_timeout_sec=t.heartbeat_timeout_sec,
            last_heartbeat_at=None,
            ready_at=ctx.ts if state is TaskState.READY else None,
            asset_key=t.asset_key,
            partition_key=t.partition_key,
            requires_visible_output=t.requires_visible_output,
            timeout_seconds=t.timeout_seconds,
            code_version=t.code_version,
            row_version=ctx.event_id,
        )
        for up in t.depends_on:
            ctx.p.deps[(up, t.key)] = _dep_row(d.run_id, up, t.key, False, None, None, None, ctx.event_id)
    ctx.invalidate_edges()
    if run is not None:
        n = len(d.tasks)
        if dead:
            ctx.put_run(tasks_total=n, tasks_completed=n, tasks_cancelled=n)
        else:
            ctx.put_run(tasks_total=n, state=RunState.RUNNING.value)
    return True


def _stop_run(ctx: FoldContext, reason: str | None, *, timed_out: bool) -> bool:
    run = ctx.p.run
    if run is None or run.state in _RUN_TERMINAL:
        return False
    changes: dict[str, Any] = {
        "cancel_requested": True,
        "cancel_requested_at": run.cancel_requested_at if run.cancel_requested_at is not None else ctx.ts,
        "cancel_reason": run.cancel_reason if run.cancel_reason is not None else reason,
    }
    if timed_out:
        changes["timed_out"] = True
    run = ctx.put_run(**changes)
    ctx.cancel_waiting()
    if run.state == RunState.TRIGGERED.value:  # no plan yet: nothing can still be running
        ctx.put_run(state=final_run_state(run).value, completed_at=ctx.ts)
    ctx.check_run_complete()
    return True


def _cancel_requested(ctx: FoldContext, d: RunCancelRequested) -> bool:
    return _stop_run(ctx, d.reason, timed_out=False)


def _timed_out(ctx: FoldContext, d: RunTimedOut) -> bool:
    return _stop_run(ctx, d.reason, timed_out=True)


def _live_task(ctx: FoldContext, key: str) -> TaskRow | None:
    task = ctx.p.tasks.get(key)
    return None if task is None or is_terminal(task) else task


def _started(ctx: FoldContext, d: TaskStarted) -> bool:
    task = _live_task(ctx, d.task_key)
    run = ctx.p.run
    if task is None or (run is not None and run.cancel_requested) or d.attempt < task.attempt:
        return False
    # Same attempt: only the DISPATCHED attempt with the same id may start (a finished attempt in
    # RETRY_WAIT, or another id, is a stale or forged start).
    if d.attempt == task.attempt and (
        task.state in (TaskState.RETRY_WAIT.value, TaskState.RUNNING.value) or d.attempt_id != task.attempt_id
    ):
        return False
    # A start ahead of its dispatch's record (a fast worker, known by its token) leaves the dispatch
    # time to that record: the row's is another attempt's.
    ahead = (task.state, task.attempt) != (TaskState.DISPATCHED.value, d.attempt)
    ctx.put_task(
        task,
        state=TaskState.RUNNING.value,
        attempt=d.attempt,
        attempt_id=d.attempt_id,
        started_at=ctx.ts,
        retry_not_before=None,
        **({"dispatched_at": None} if ahead else {}),
    )
    ctx.p.outbox.pop(dispatch_id(d.run_id, d.task_key, d.attempt), None)
    return True


def _heartbeat(ctx: FoldContext, d: TaskHeartbeat) -> bool:
    task = _live_task(ctx, d.task_key)
    if task is None or (d.attempt, d.attempt_id) != (task.attempt, task.attempt_id):
        return False
    # Server receipt time, never the worker's clock: zombie detection compares it with our clock.
    progress: dict[str, Any] = {}
    if d.message is not None or d.progress_pct is not None:
        # A heartbeat without progress keeps the last reported one: the asset simply said nothing new.
        progress = {"progress_message": d.message, "progress_pct": d.progress_pct}
    ctx.put_task(task, last_heartbeat_at=ctx.ts, **progress)
    return True


def _finished(ctx: FoldContext, d: TaskFinished) -> bool:
    task = _live_task(ctx, d.task_key)
    if (
        task is None
        or task.state not in _FINISHABLE
        or (d.attempt, d.attempt_id) != (task.attempt, task.attempt_id)
    ):
        return False
    if d.outcome == "succeeded" and ctx.cancels.get((d.task_key, d.attempt, d.attempt_id), "") > ctx.event_id:
        return False  # a cancel of this attempt follows: it wins (design §6, late success)
    error = d.error or {}
    common: dict[str, Any] = {
        "error_message": d.error_message if d.error_message is not None else error.get("message"),
        "error_category": d.error_category if d.error_category is not None else error.get("category"),
        "error_stack_trace": reported_str(error.get("stackTrace")),
        # Progress describes a running attempt; whatever follows this one starts with none.
        "progress_message": None,
        "progress_pct": None,
    }
    if d.output is not None:
        common["output_json"] = canonical_dumps(d.output)
    if d.outcome == "succeeded":
        _succeed(ctx, task, d, common)
    elif d.outcome == "failed":
        _fail(ctx, task, d, common)
    else:
        state = TaskState.SKIPPED if d.outcome == "skipped" else TaskState.CANCELLED
        ctx.end_task(task, state, **common)
        ctx.propagate(task.task_key, state.value)
    ctx.check_run_complete()
    return True


def _succeed(ctx: FoldContext, task: TaskRow, d: TaskFinished, common: dict[str, Any]) -> None:
    out = d.output or {}
    vis = d.output_visibility
    vis_state = vis.visibility_state.upper() if vis is not None else out.get("outputVisibilityState")
    materialization_id = d.materialization_id or reported_str(out.get("materializationId"))
    row = ctx.end_task(
        task,
        TaskState.SUCCEEDED,
        output_json=common.get("output_json"),
        error_message=None,
        error_category=None,
        error_stack_trace=None,
        progress_message=None,
        progress_pct=None,
        retry_not_before=None,
        materialization_id=materialization_id,
        execution_lineage_ref=execution_lineage_ref(d.run_id, d.task_key, d.attempt, materialization_id, out),
        delta_table=reported_str(out.get("deltaTable")),
        delta_version=reported_int(out.get("deltaVersion")),
        delta_partition=reported_str(out.get("deltaPartition")),
        output_visibility_state=vis_state if vis_state in ("PENDING", "VISIBLE", "FAILED") else None,
        published_at=vis.published_at if vis is not None else None,
        publish_error=vis.publish_error if vis is not None else reported_str(out.get("publishError")),
    )
    ctx.satisfy(row)


def _fail(ctx: FoldContext, task: TaskRow, d: TaskFinished, common: dict[str, Any]) -> None:
    if d.error is not None:
        retryable = is_retryable(d.error)
    else:
        retryable = d.error_category is None or is_retryable({"category": d.error_category})
    run = ctx.p.run
    if retryable and run is not None and run.cancel_requested:
        # design §6: a cancelling run never re-dispatches; the retry it would have had is cancelled.
        ctx.end_task(task, TaskState.CANCELLED, **common)
        ctx.propagate(task.task_key, TaskState.CANCELLED.value)
    elif retryable and d.attempt < task.max_attempts:
        deadline = retry_not_before_ms(ctx.event_id, d.attempt)
        ctx.put_task(task, state=TaskState.RETRY_WAIT.value, retry_not_before=deadline, **common)
    else:
        ctx.end_task(task, TaskState.FAILED, **common)
        ctx.propagate(task.task_key, TaskState.FAILED.value)


def _visibility(ctx: FoldContext, d: TaskOutputVisibilityChanged) -> bool:
    task = ctx.p.tasks.get(d.task_key)
    if (
        task is None
        or task.state != TaskState.SUCCEEDED.value
        or (d.attempt, d.attempt_id) != (task.attempt, task.attempt_id)
        or task.output_visibility_state in ("VISIBLE", "FAILED")  # final
    ):
        return False
    ctx.put_task(
        task,
        output_visibility_state=d.visibility_state.upper(),
        published_at=d.published_at,
        publish_error=d.publish_error,
    )
    return True


def _consumed(task: TaskRow, attempt: int) -> bool:
    """An attempt a dispatch may no longer create (behavior §2 DispatchRequested)."""
    if is_terminal(task) or task.attempt > attempt:
        return True
    return task.attempt == attempt and task.state in (TaskState.RUNNING.value, TaskState.RETRY_WAIT.value)


def _dispatch_requested(ctx: FoldContext, d: DispatchRequested) -> bool:
    task = ctx.p.tasks.get(d.task_key)
    if task is None:
        return False
    if _consumed(task, d.attempt):
        ctx.p.outbox.pop(d.dispatch_id, None)
        if (task.state, task.attempt, task.dispatched_at) == (TaskState.RUNNING.value, d.attempt, None):
            # Its worker started first: the row learns when the attempt was dispatched (its token's
            # issue time, which a forced end of the attempt carries: controller.forced_dispatched_at).
            ctx.put_task(task, dispatched_at=ctx.ts)
            return True
        return False
    row = ctx.p.outbox.get(d.dispatch_id)
    if row is None:
        row = _outbox_row(
            d.run_id,
            d.task_key,
            d.attempt,
            d.dispatch_id,
            None,
            "PENDING",
            d.attempt_id,
            d.worker_queue,
            ctx.ts,
        )
        ctx.p.outbox[d.dispatch_id] = replace_row(row, row_version=ctx.event_id)
    else:
        # The ack folded first: fill only what it could not know (behavior §2, scenario 12).
        fill: dict[str, Any] = {}
        if not row.attempt_id:
            fill["attempt_id"] = d.attempt_id
        if row.worker_queue == DEFAULT_WORKER_QUEUE and d.worker_queue != DEFAULT_WORKER_QUEUE:
            fill["worker_queue"] = d.worker_queue
        if fill:
            ctx.p.outbox[d.dispatch_id] = replace_row(row, row_version=ctx.event_id, **fill)
    attempt_id = ctx.p.outbox[d.dispatch_id].attempt_id or d.attempt_id
    if task.state in _DISPATCHABLE and d.attempt >= task.attempt:
        ctx.put_task(
            task,
            state=TaskState.DISPATCHED.value,
            attempt=d.attempt,
            attempt_id=attempt_id,
            retry_not_before=None,
            dispatched_at=ctx.ts,
        )
    return True


def _dispatch_enqueued(ctx: FoldContext, d: DispatchEnqueued) -> bool:
    run_id, task_key, attempt = parse_dispatch_id(d.dispatch_id)
    task = ctx.p.tasks.get(task_key)
    if task is None:
        return False
    if _consumed(task, attempt):
        ctx.p.outbox.pop(d.dispatch_id, None)
        return False
    row = ctx.p.outbox.get(d.dispatch_id)
    if row is None:  # ack before request: attempt_id is filled when the request folds
        row = _outbox_row(
            run_id, task_key, attempt, d.dispatch_id, None, "PENDING", "", DEFAULT_WORKER_QUEUE, ctx.ts
        )
    ctx.p.outbox[d.dispatch_id] = replace_row(
        row, status="CREATED", cloud_task_id=d.cloud_task_id, created_at=ctx.ts, row_version=ctx.event_id
    )
    return True


def _timer_row(ctx: FoldContext, timer_id: str, timer_type: str | None) -> TimerRow:
    row = ctx.p.timers.get(timer_id)
    if row is not None:
        return row
    # Out of order (ack or fire before the request): everything but the payload is in the id.
    parts = parse_timer_id(timer_id)
    kind = timer_type.upper() if timer_type is not None else _TIMER_KIND[parts.kind]
    return _timer_row_of(
        timer_id,
        None,
        kind,
        parts.run_id,
        parts.task_key,
        parts.attempt,
        parts.epoch_s * 1000,
        "SCHEDULED",
        None,
    )


def _timer_requested(ctx: FoldContext, d: TimerRequested) -> bool:
    row = _timer_row(ctx, d.timer_id, d.timer_type)
    ctx.p.timers[d.timer_id] = replace_row(
        row, timer_type=d.timer_type.upper(), fire_at=d.fire_at, row_version=ctx.event_id
    )
    task = ctx.p.tasks.get(row.task_key) if row.task_key is not None else None
    if (
        d.timer_type == "retry"
        and task is not None
        and task.state == TaskState.RETRY_WAIT.value
        and task.attempt == row.attempt
    ):
        ctx.put_task(task, retry_not_before=d.fire_at)  # the timer's fire_at is authoritative
    return True


def _timer_enqueued(ctx: FoldContext, d: TimerEnqueued) -> bool:
    row = _timer_row(ctx, d.timer_id, None)
    ctx.p.timers[d.timer_id] = replace_row(row, cloud_task_id=d.cloud_task_id, row_version=ctx.event_id)
    return True


def _timer_fired(ctx: FoldContext, d: TimerFired) -> bool:
    row = _timer_row(ctx, d.timer_id, d.timer_type)
    ctx.p.timers[d.timer_id] = replace_row(row, state="FIRED", row_version=ctx.event_id)
    return True


HANDLERS: dict[type, Callable[[FoldContext, Any], bool]] = {
    RunTriggered: _run_triggered,
    PlanCreated: _plan_created,
    RunCancelRequested: _cancel_requested,
    RunTimedOut: _timed_out,
    TaskStarted: _started,
    TaskHeartbeat: _heartbeat,
    TaskFinished: _finished,
    TaskOutputVisibilityChanged: _visibility,
    DispatchRequested: _dispatch_requested,
    DispatchEnqueued: _dispatch_enqueued,
    TimerRequested: _timer_requested,
    TimerEnqueued: _timer_enqueued,
    TimerFired: _timer_fired,
}


def apply(ctx: FoldContext, event: Event) -> bool:
    """Apply one event through the idempotency gate; returns whether it applied.

    Heartbeats pass no gate: their idempotency is "newest per attempt" (servo.core.liveness).
    """
    handler = HANDLERS.get(type(event.data))
    if handler is None or (handler is not _heartbeat and event.idempotency_key in ctx.p.idempotency):
        return False  # unknown types are recorded by the caller and otherwise ignored
    ctx.event_id, ctx.ts = event.event_id, event.timestamp_ms
    return handler(ctx, event.data)
