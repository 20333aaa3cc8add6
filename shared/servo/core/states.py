"""The task and run state machines, as data (behavior §1 with design §6 overrides).

The fold consults these tables before every state change, so a move the tables forbid is a bug or
a stale fact and surfaces as ``InvalidTransition`` instead of a silently corrupted projection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType

from servo.core.errors import InvalidTransition
from servo.core.rows import RunRow, TaskRow


class TaskState(StrEnum):
    """Internal task states; the API shows them through ``public_task_state``."""

    PLANNED = "PLANNED"  # known to the plan, not yet placed (never persisted by the fold)
    BLOCKED = "BLOCKED"  # waiting for at least one upstream edge
    READY = "READY"  # every edge satisfied; the controller may dispatch it
    DISPATCHED = "DISPATCHED"  # an attempt was requested (outbox row); no worker has started it
    RUNNING = "RUNNING"  # a worker started the current attempt
    RETRY_WAIT = "RETRY_WAIT"  # the current attempt failed retryably; waits for retry_not_before
    SKIPPED = "SKIPPED"  # an upstream failed or was skipped
    CANCELLED = "CANCELLED"  # the run was cancelled / timed out, or an upstream was cancelled
    FAILED = "FAILED"  # failed for good (not retryable, or attempts exhausted)
    SUCCEEDED = "SUCCEEDED"


class RunState(StrEnum):
    """Internal run states (Servo adds TIMED_OUT, design §6)."""

    TRIGGERED = "TRIGGERED"  # RunTriggered folded, no plan yet
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"


# Merge rank (behavior §1.3): on equal row_version the higher rank wins, so a terminal state is never
# overwritten by a stale non-terminal copy of the same row.
TASK_RANK: Mapping[TaskState, int] = MappingProxyType(
    {
        TaskState.PLANNED: 0,
        TaskState.BLOCKED: 1,
        TaskState.READY: 2,
        TaskState.DISPATCHED: 3,
        TaskState.RUNNING: 4,
        TaskState.RETRY_WAIT: 5,
        TaskState.SKIPPED: 10,
        TaskState.CANCELLED: 11,
        TaskState.FAILED: 12,
        TaskState.SUCCEEDED: 13,
    }
)

# Sticky: no event moves a task out of these; they count towards tasks_completed.
TASK_TERMINAL = frozenset({TaskState.SKIPPED, TaskState.CANCELLED, TaskState.FAILED, TaskState.SUCCEEDED})
# An attempt is in flight (a Cloud Task or a worker holds it). A run cancel still cancels DISPATCHED
# at once (the worker's start then gets 409); only RUNNING is left to finish cooperatively.
TASK_ACTIVE = frozenset({TaskState.DISPATCHED, TaskState.RUNNING})
# No attempt is in flight: waiting on upstreams, on the dispatcher or on a retry deadline.
TASK_WAITING = frozenset({TaskState.PLANNED, TaskState.BLOCKED, TaskState.READY, TaskState.RETRY_WAIT})
# States a DispatchRequested may move to DISPATCHED (behavior §1.1).
TASK_DISPATCHABLE = frozenset({TaskState.READY, TaskState.RETRY_WAIT, TaskState.DISPATCHED})
# States that hold a current attempt a TaskFinished can complete.
TASK_FINISHABLE = frozenset({TaskState.DISPATCHED, TaskState.RUNNING})

# Terminal runs are final; TIMED_OUT is terminal like the others.
RUN_TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.TIMED_OUT})
# Runs that may still change.
RUN_ACTIVE = frozenset({RunState.TRIGGERED, RunState.RUNNING})
# The terminal API states carry their internal names (design §6).
_PUBLIC_RUN_TERMINAL = frozenset(s.value for s in RUN_TERMINAL)


def is_terminal_public(state: str | None) -> bool:
    """Whether an API run state (``PENDING``, ``CANCELLING``, ``SUCCEEDED``, …) is final."""
    return state in _PUBLIC_RUN_TERMINAL


_NON_TERMINAL = frozenset(TaskState) - TASK_TERMINAL
_DERIVED_ENDS = frozenset({TaskState.SKIPPED, TaskState.CANCELLED})  # upstream propagation / run cancel
_FINISH_ENDS = frozenset(
    {TaskState.RETRY_WAIT, TaskState.SUCCEEDED, TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED}
)


def _task_targets(frm: TaskState) -> frozenset[TaskState]:
    if frm in TASK_TERMINAL:
        return frozenset()
    # Any non-terminal task may be started (a skewed writer clock can order a start before the
    # upstream's success) and may be skipped/cancelled by propagation.
    targets = {TaskState.RUNNING, *_DERIVED_ENDS}
    if frm is TaskState.PLANNED:
        targets |= {TaskState.BLOCKED, TaskState.READY}
    if frm is TaskState.BLOCKED:
        targets.add(TaskState.READY)
    if frm in TASK_DISPATCHABLE:
        targets.add(TaskState.DISPATCHED)
    if frm in TASK_FINISHABLE:
        targets |= _FINISH_ENDS
    return frozenset(targets)


TASK_TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = MappingProxyType(
    {s: _task_targets(s) for s in TaskState}
)

RUN_TRANSITIONS: Mapping[RunState, frozenset[RunState]] = MappingProxyType(
    {
        # A plan makes the run RUNNING; a cancel or timeout before the plan ends it at once.
        RunState.TRIGGERED: frozenset({RunState.RUNNING, RunState.CANCELLED, RunState.TIMED_OUT}),
        RunState.RUNNING: RUN_TERMINAL,
        **{s: frozenset() for s in RUN_TERMINAL},
    }
)


def _task_state(value: TaskState | str, frm: str, to: str) -> TaskState:
    try:
        return TaskState(value)
    except ValueError:
        raise InvalidTransition("task", frm, to, f"unknown task state {value!r}") from None


def check_task_transition(frm: TaskState | str, to: TaskState | str) -> None:
    """Raise ``InvalidTransition`` unless the task table allows ``frm -> to``."""
    frm_s, to_s = str(getattr(frm, "value", frm)), str(getattr(to, "value", to))
    f, t = _task_state(frm, frm_s, to_s), _task_state(to, frm_s, to_s)
    if t not in TASK_TRANSITIONS[f]:
        reason = "terminal states are final" if f in TASK_TERMINAL else ""
        raise InvalidTransition("task", f.value, t.value, reason)


def check_run_transition(frm: RunState | str, to: RunState | str) -> None:
    """Raise ``InvalidTransition`` unless the run table allows ``frm -> to``."""
    frm_s, to_s = str(getattr(frm, "value", frm)), str(getattr(to, "value", to))
    try:
        f, t = RunState(frm), RunState(to)
    except ValueError:
        raise InvalidTransition("run", frm_s, to_s, "unknown run state") from None
    if t not in RUN_TRANSITIONS[f]:
        reason = "terminal states are final" if f in RUN_TERMINAL else ""
        raise InvalidTransition("run", f.value, t.value, reason)


_PUBLIC_TASK = MappingProxyType(
    {
        TaskState.PLANNED: "PENDING",
        TaskState.BLOCKED: "PENDING",
        TaskState.RETRY_WAIT: "PENDING",
        TaskState.READY: "QUEUED",
        TaskState.DISPATCHED: "QUEUED",
        TaskState.RUNNING: "RUNNING",
        TaskState.SUCCEEDED: "SUCCEEDED",
        TaskState.FAILED: "FAILED",
        TaskState.SKIPPED: "SKIPPED",
        TaskState.CANCELLED: "CANCELLED",
    }
)


def public_task_state(state: TaskState | str) -> str:
    """The task state the API and CLI show (design §6)."""
    return _PUBLIC_TASK[TaskState(state)]


def public_run_state(run: RunRow, tasks: Iterable[TaskRow]) -> str:
    """The run state the API and CLI show (design §6, behavior §1.2).

    A run whose required outputs are not yet visible is still RUNNING to the user even when every
    task has finished, and a failed publication fails the run.
    """
    state = RunState(run.state)
    if state is RunState.TIMED_OUT:
        return "TIMED_OUT"
    if run.cancel_requested and state not in RUN_TERMINAL:
        return "CANCELLING"
    if state is RunState.CANCELLED:
        return "CANCELLED"
    if state is RunState.TRIGGERED:
        return "PENDING"
    required = [
        t.output_visibility_state
        for t in tasks
        if t.requires_visible_output and t.state == TaskState.SUCCEEDED.value
    ]
    if state is RunState.FAILED or "FAILED" in required:
        return "FAILED"
    if state is RunState.SUCCEEDED and "PENDING" in required:
        return "RUNNING"
    return state.value
