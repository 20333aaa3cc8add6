"""What the control plane should do next, decided from the projection alone (behavior §5, §7; design §5–§6).

Pure: given a run's partition and ``now``, return decisions; the services turn them into ledger events
and Cloud Tasks. Running a decision twice is harmless — every decision maps to an idempotency key or a
deterministic Cloud Task name — so the compactor (after each publish) and the sweep (every minute)
can both call it without coordination.
"""

from __future__ import annotations

from dataclasses import dataclass

from servo.core.ids import attempt_id, dispatch_id, timer_id
from servo.core.rows import OutboxRow, RunRow, TaskRow
from servo.core.state import RunPartition
from servo.core.states import RUN_TERMINAL, RunState, TaskState
from servo.core.taskdef import DEFAULT_WORKER_QUEUE


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    cancel_grace_ms: int = 30_000
    # A CREATED dispatch whose worker never started it (lost delivery) is re-enqueued after this.
    dispatch_repair_after_ms: int = 10 * 60_000
    # Slack on top of heartbeat_timeout_sec before a silent attempt is declared a zombie.
    heartbeat_grace_ms: int = 0
    # The most dispatches a completing callback makes itself (after_completion). A wider fan-out is
    # the compactor's: one publish carries all of it, and a callback enqueueing dozens while that
    # publish comes would race it and write every request twice.
    callback_dispatch_max: int = 8


@dataclass(frozen=True, slots=True)
class RequestDispatch:
    run_id: str
    task_key: str
    attempt: int
    attempt_id: str
    dispatch_id: str
    worker_queue: str = DEFAULT_WORKER_QUEUE


@dataclass(frozen=True, slots=True)
class EnqueueDispatch:
    """Create the Cloud Task for an outbox row (first time, or a repair with a fresh name)."""

    run_id: str
    task_key: str
    attempt: int
    attempt_id: str
    dispatch_id: str
    worker_queue: str
    repair_of: str | None = None  # row_version of the stale row when this is a re-enqueue


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    timer_id: str
    timer_type: str  # RETRY | HEARTBEAT_CHECK
    run_id: str
    task_key: str
    attempt: int
    fire_at_ms: int


@dataclass(frozen=True, slots=True)
class FailAttempt:
    """Record a failure (or forced cancel) the worker never reported."""

    run_id: str
    task_key: str
    attempt: int
    attempt_id: str
    outcome: str  # FAILED | CANCELLED
    category: str  # INFRASTRUCTURE | TIMEOUT | CANCELLED
    code: str  # HEARTBEAT_TIMEOUT | ATTEMPT_TIMEOUT | CANCEL_GRACE_EXPIRED
    message: str
    retryable: bool
    # The task's asset and the attempt's dispatch, so the forced end reaches the asset catalog as the
    # worker's own report of this attempt would (see ``forced_dispatched_at``).
    asset_key: str | None = None
    partition_key: str | None = None
    code_version: str | None = None
    dispatched_at: int | None = None


def forced_dispatched_at(task: TaskRow) -> int | None:
    """The ``TaskFinished.dispatched_at`` of an attempt the control plane ends for its worker.

    A worker's report carries its task token's issue time, whole seconds (callbacks). The dispatch
    issues that token from the same clock reading it records as the dispatch time (``TaskRow.
    dispatched_at``), and a repair's token keeps the attempt's issue time (services/effects), so the
    row's dispatch time cut to whole seconds is the token's: a forced end and a late report of one
    attempt rank as that same attempt in the catalog, and the first of them is its outcome there as it
    is in the run.
    """
    return None if task.dispatched_at is None else task.dispatched_at // 1000 * 1000


@dataclass(frozen=True, slots=True)
class TimeOutRun:
    run_id: str
    reason: str


Decision = RequestDispatch | EnqueueDispatch | ScheduleTimer | FailAttempt | TimeOutRun


def _request(task: TaskRow, attempt: int) -> RequestDispatch:
    did = dispatch_id(task.run_id, task.task_key, attempt)
    return RequestDispatch(task.run_id, task.task_key, attempt, attempt_id(did), did)


def _dispatch_decisions(run: RunRow, part: RunPartition, now_ms: int) -> list[Decision]:
    out: list[Decision] = []
    for task in part.tasks.values():
        state = TaskState(task.state)
        if state is TaskState.READY:
            attempt = max(1, task.attempt)
            if dispatch_id(task.run_id, task.task_key, attempt) not in part.outbox:
                out.append(_request(task, attempt))
        elif state is TaskState.RETRY_WAIT and task.attempt < task.max_attempts:
            due = task.retry_not_before
            if due is None or due <= now_ms:
                if dispatch_id(task.run_id, task.task_key, task.attempt + 1) not in part.outbox:
                    out.append(_request(task, task.attempt + 1))
            else:
                tid = timer_id("retry", task.run_id, task.task_key, task.attempt, due // 1000)
                if tid not in part.timers:
                    out.append(ScheduleTimer(tid, "RETRY", task.run_id, task.task_key, task.attempt, due))
    for row in part.outbox.values():
        owner = part.tasks.get(row.task_key)
        if owner is None or owner.attempt != row.attempt or owner.state != TaskState.DISPATCHED.value:
            continue
        if row.status == "PENDING":
            out.append(_enqueue(row))
    return out


def _enqueue(row: OutboxRow, repair_of: str | None = None) -> EnqueueDispatch:
    return EnqueueDispatch(
        row.run_id, row.task_key, row.attempt, row.attempt_id, row.dispatch_id, row.worker_queue, repair_of
    )


def after_publish(part: RunPartition, now_ms: int) -> list[Decision]:
    """Decisions right after a publish that touched this run: dispatch what became ready."""
    run = part.run
    if run is None or RunState(run.state) in RUN_TERMINAL or run.cancel_requested:
        return []
    return _dispatch_decisions(run, part, now_ms)


def after_completion(
    part: RunPartition, finished: TaskRow, now_ms: int, config: ControllerConfig = ControllerConfig()
) -> list[Decision]:
    """Dispatches a worker's completion of ``finished`` made due, for its callback to make at once.

    ``part`` is the run as the completing callback sees it: a published view, the events its instance
    wrote since, and this completion folded in. Only the downstream tasks of ``finished`` that the
    completion made ready are decided here, exactly as ``after_publish`` would decide them (same
    dispatch id, so the same Cloud Task name: whichever of callback and compactor comes second is
    deduplicated); everything else stays the compactor's. A completion the sweep may have beaten
    (an attempt past half its heartbeat or run-time limit: the sweep may already have failed it, and
    the fold keeps the first end of an attempt) dispatches nothing, and neither does one that made
    more tasks ready than ``config.callback_dispatch_max``.
    """
    done = part.tasks.get(finished.task_key)
    if (
        done is None
        or done.state != TaskState.SUCCEEDED.value
        or (done.attempt, done.attempt_id) != (finished.attempt, finished.attempt_id)
        or _zombie_or_timeout(finished, now_ms, config, share=0.5)
    ):
        return []
    downstream = downstream_of(part, finished.task_key)
    made_ready: list[Decision] = [
        d for d in after_publish(part, now_ms) if isinstance(d, RequestDispatch) and d.task_key in downstream
    ]
    return made_ready if len(made_ready) <= config.callback_dispatch_max else []


def after_trigger(
    part: RunPartition, now_ms: int, config: ControllerConfig = ControllerConfig()
) -> list[RequestDispatch]:
    """The dispatches a run's creation made due, for its trigger to make at once.

    ``part`` is the run folded from its creation events alone. Exactly what ``after_publish`` of the
    published run will decide (same dispatch ids: whichever of trigger and compactor comes second is
    deduplicated), narrowed to dispatches; none when more than ``config.callback_dispatch_max`` roots
    are ready (a wide run is the compactor's: one publish carries its dispatches).
    """
    ready = [d for d in after_publish(part, now_ms) if isinstance(d, RequestDispatch)]
    return ready if len(ready) <= config.callback_dispatch_max else []


def completion_only_progress(part: RunPartition, finished: TaskRow, outcome: str) -> bool:
    """Whether ``finished``'s completion (its worker's ``outcome``) unblocks nothing, so its publish
    may wait for company (the embedded stack's group commit).

    ``part`` is the run as the completing callback sees it, before the completion. A success of a
    task nothing waits on dispatches nothing; while another task of the run is open it does not end
    the run either. A failure (its retry is decided on publish) and any completion in a run being
    cancelled or timed out (which ends when its tasks do) are waited on. A view that lags only
    counts more tasks open: the completion that in fact ends the run waits at most the longer window.
    """
    run = part.run
    return (
        outcome == "succeeded"
        and run is not None
        and not (run.cancel_requested or run.timed_out)
        and RunState(run.state) not in RUN_TERMINAL
        and run.tasks_total - run.tasks_completed > 1
        and not downstream_of(part, finished.task_key)
    )


def downstream_of(part: RunPartition, task_key: str) -> set[str]:
    """The tasks of the run that wait on ``task_key``."""
    return {down for up, down in part.deps if up == task_key}


def sweep(part: RunPartition, now_ms: int, config: ControllerConfig = ControllerConfig()) -> list[Decision]:
    """The periodic repair pass over one run (behavior §7 with design §6 timeouts and grace)."""
    run = part.run
    if run is None or RunState(run.state) in RUN_TERMINAL:
        return []
    out: list[Decision] = []
    if run.timeout_at is not None and now_ms >= run.timeout_at and not run.timed_out:
        out.append(TimeOutRun(run.run_id, "run timeout exceeded"))
    if run.cancel_requested:
        requested = run.cancel_requested_at if run.cancel_requested_at is not None else run.triggered_at
        if now_ms >= requested + config.cancel_grace_ms:
            out.extend(_force_cancel(part))
        return out
    out.extend(_dispatch_decisions(run, part, now_ms))
    for task in part.tasks.values():
        if task.state == TaskState.RUNNING.value and task.attempt_id:
            out.extend(_zombie_or_timeout(task, now_ms, config))
        elif task.state == TaskState.DISPATCHED.value and task.attempt_id:
            row = part.outbox.get(dispatch_id(task.run_id, task.task_key, task.attempt))
            if row is None:
                out.append(_request(task, task.attempt))
            elif row.status == "CREATED" and now_ms - row.created_at >= config.dispatch_repair_after_ms:
                out.append(_enqueue(row, repair_of=row.row_version))
    return out


def _fail(
    task: TaskRow, outcome: str, category: str, code: str, message: str, retryable: bool
) -> FailAttempt:
    return FailAttempt(
        task.run_id,
        task.task_key,
        task.attempt,
        task.attempt_id or "",
        outcome,
        category,
        code,
        message,
        retryable,
        task.asset_key,
        task.partition_key,
        task.code_version,
        forced_dispatched_at(task),
    )


def _zombie_or_timeout(
    task: TaskRow, now_ms: int, config: ControllerConfig, share: float = 1.0
) -> list[Decision]:
    """The failure the sweep records for an attempt past ``share`` of its limits (the sweep: all)."""
    started = task.started_at if task.started_at is not None else now_ms
    if task.timeout_seconds is not None and now_ms - started > task.timeout_seconds * 1000 * share:
        message = f"attempt {task.attempt} exceeded its timeout of {task.timeout_seconds}s"
        return [_fail(task, "FAILED", "TIMEOUT", "ATTEMPT_TIMEOUT", message, True)]
    last_seen = task.last_heartbeat_at if task.last_heartbeat_at is not None else started
    if now_ms - last_seen > (task.heartbeat_timeout_sec * 1000 + config.heartbeat_grace_ms) * share:
        message = f"no heartbeat for more than {task.heartbeat_timeout_sec}s"
        # Retryable: the retry policy then also covers workers that crashed (design §6).
        return [_fail(task, "FAILED", "INFRASTRUCTURE", "HEARTBEAT_TIMEOUT", message, True)]
    return []


def _force_cancel(part: RunPartition) -> list[Decision]:
    message = "cancelled: the worker did not stop within the grace period"
    return [
        _fail(t, "CANCELLED", "CANCELLED", "CANCEL_GRACE_EXPIRED", message, False)
        for t in part.tasks.values()
        if t.state in (TaskState.RUNNING.value, TaskState.DISPATCHED.value)
    ]
