"""The event payload types: one frozen dataclass per ledger ``data.type`` (contracts §6).

Each type declares its wire fields (``KINDS``, see ``_event_fields``), checks what a single field cannot
(cross-field and id-consistency rules) in ``__post_init__``, and derives its own idempotency key, so a key
is never typed by a caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from servo.core._automation_events import (
    AUTOMATION_EVENT_TYPES,
    BackfillChunkPlanned,
    BackfillCreated,
    BackfillStateChanged,
    RunRequestResolved,
    ScheduleDefinitionRemoved,
    ScheduleDefinitionUpserted,
    ScheduleStatusChanged,
    ScheduleTicked,
)
from servo.core._event_fields import (
    ERROR_CATEGORIES,
    OUTCOMES,
    TIMER_TYPES,
    TRIGGER_TYPES,
    VISIBILITY_STATES,
    OutputVisibility,
    bad_field,
)
from servo.core._sensor_events import (
    SensorDefinitionRemoved,
    SensorDefinitionUpserted,
    SensorEvaluated,
    SensorEvaluationRequested,
    SensorMessageReceived,
    SensorStatusChanged,
)
from servo.core.errors import InvalidInput
from servo.core.ids import dispatch_id as make_dispatch_id
from servo.core.ids import parse_dispatch_id, parse_timer_id
from servo.core.taskdef import DEFAULT_WORKER_QUEUE, TaskDef


@dataclass(frozen=True, slots=True)
class RunTriggered:
    run_id: str
    plan_id: str
    trigger: dict[str, Any]
    root_assets: tuple[str, ...]
    run_key: str | None = None
    labels: dict[str, str] | None = None
    code_version: str | None = None
    timeout_seconds: int | None = None  # Servo: run timeout (design §6)
    traceparent: str | None = None  # Servo: W3C trace context of the trigger request

    KINDS: ClassVar[Mapping[str, str]] = {
        "run_id": "id", "plan_id": "id", "trigger": "obj", "root_assets": "strs", "run_key": "id",
        "labels": "labels", "code_version": "str", "timeout_seconds": "int", "traceparent": "str",
    }  # fmt: skip

    def __post_init__(self) -> None:
        if self.trigger.get("type") not in TRIGGER_TYPES:
            raise bad_field("trigger.type", f"{self.trigger.get('type')!r} not in {sorted(TRIGGER_TYPES)}")

    def idempotency_key(self) -> str:
        return f"run:{self.run_key}" if self.run_key is not None else f"run:{self.run_id}"


@dataclass(frozen=True, slots=True)
class PlanCreated:
    run_id: str
    plan_id: str
    tasks: tuple[TaskDef, ...]

    KINDS: ClassVar[Mapping[str, str]] = {"run_id": "id", "plan_id": "id", "tasks": "tasks"}

    def __post_init__(self) -> None:
        keys = [t.key for t in self.tasks]
        if not keys:
            raise bad_field("tasks", "a plan needs at least one task")
        known = set(keys)
        if len(known) != len(keys):
            raise bad_field("tasks", "duplicate task key")
        for t in self.tasks:
            if not t.key or ":" in t.key:
                raise bad_field(
                    "tasks.key", f"{t.key!r} must be non-empty and contain no ':' (timer ids split on it)"
                )
            if t.max_attempts < 1:
                raise bad_field("tasks.max_attempts", f"{t.key}: must be >= 1")
            for dep in t.depends_on:
                if dep not in known or dep == t.key:
                    raise bad_field(
                        "tasks.depends_on", f"{t.key} depends on {dep!r}, which is not another planned task"
                    )
            if len(set(t.depends_on)) != len(t.depends_on):
                raise bad_field("tasks.depends_on", f"{t.key} lists a dependency twice")

    def idempotency_key(self) -> str:
        return f"plan:{self.run_id}"


@dataclass(frozen=True, slots=True)
class RunCancelRequested:
    run_id: str
    requested_by: str
    reason: str | None = None

    KINDS: ClassVar[Mapping[str, str]] = {"run_id": "id", "requested_by": "str", "reason": "str"}

    def idempotency_key(self) -> str:
        return f"cancel_req:{self.run_id}"


@dataclass(frozen=True, slots=True)
class RunTimedOut:
    """Servo: the sweep found the run past its timeout (design §6)."""

    run_id: str
    reason: str

    KINDS: ClassVar[Mapping[str, str]] = {"run_id": "id", "reason": "str"}

    def idempotency_key(self) -> str:
        return f"run_timeout:{self.run_id}"


_ATTEMPT_KINDS: Mapping[str, str] = {
    "run_id": "id", "task_key": "id", "attempt": "attempt", "attempt_id": "id", "worker_id": "str",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class TaskStarted:
    run_id: str
    task_key: str
    attempt: int
    attempt_id: str
    worker_id: str

    KINDS: ClassVar[Mapping[str, str]] = _ATTEMPT_KINDS

    def idempotency_key(self) -> str:
        return f"started:{self.run_id}:{self.task_key}:{self.attempt}"


@dataclass(frozen=True, slots=True)
class TaskHeartbeat:
    run_id: str
    task_key: str
    attempt: int
    attempt_id: str
    worker_id: str
    heartbeat_at: int | None = None  # the worker's observation (ms); the fold uses the event time
    progress_pct: int | None = None
    message: str | None = None

    KINDS: ClassVar[Mapping[str, str]] = {
        **_ATTEMPT_KINDS, "heartbeat_at": "ts", "progress_pct": "pct", "message": "str",
    }  # fmt: skip

    def idempotency_key(self) -> str:
        key = f"heartbeat:{self.run_id}:{self.task_key}:{self.attempt}:{self.attempt_id}"
        return key if self.heartbeat_at is None else f"{key}:{self.heartbeat_at}"


@dataclass(frozen=True, slots=True)
class TaskFinished:
    """A completion (Servo's TaskFinished; the reference's TaskCompletionRecorded decodes to this too)."""

    run_id: str
    task_key: str
    attempt: int
    attempt_id: str
    worker_id: str
    outcome: str  # succeeded | failed | skipped | cancelled
    materialization_id: str | None = None
    error_message: str | None = None
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    cancelled_during_phase: str | None = None
    partial_progress_json: str | None = None
    asset_key: str | None = None
    partition_key: str | None = None
    code_version: str | None = None
    output_visibility: OutputVisibility | None = None
    error_category: str | None = None  # Servo: category when no error struct (e.g. HEARTBEAT_TIMEOUT)
    # Servo: when the attempt was dispatched (its task token's issue time, ms), alike in every completion
    # of the attempt, so the asset catalog orders attempts by it, not by which repeat came first.
    dispatched_at: int | None = None

    KINDS: ClassVar[Mapping[str, str]] = {
        **_ATTEMPT_KINDS, "outcome": "id", "materialization_id": "str", "error_message": "str",
        "output": "obj", "error": "obj", "metrics": "obj", "cancelled_during_phase": "str",
        "partial_progress_json": "str",
        "asset_key": "str", "partition_key": "str", "code_version": "str", "output_visibility": "vis",
        "error_category": "id", "dispatched_at": "ts",
    }  # fmt: skip

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise bad_field("outcome", f"{self.outcome!r} not in {sorted(OUTCOMES)}")
        if self.error_category is not None and self.error_category not in ERROR_CATEGORIES:
            raise bad_field("error_category", f"{self.error_category!r} not in {sorted(ERROR_CATEGORIES)}")
        if self.error is not None:
            if self.error.get("category") not in ERROR_CATEGORIES:
                raise bad_field(
                    "error.category", f"{self.error.get('category')!r} not in {sorted(ERROR_CATEGORIES)}"
                )
            if not isinstance(self.error.get("retryable", False), bool):
                raise bad_field("error.retryable", "must be a bool")

    def idempotency_key(self) -> str:
        return f"finished:{self.run_id}:{self.task_key}:{self.attempt}"


@dataclass(frozen=True, slots=True)
class TaskOutputVisibilityChanged:
    run_id: str
    task_key: str
    attempt: int
    attempt_id: str
    visibility_state: str
    published_at: int | None = None
    publish_error: str | None = None

    KINDS: ClassVar[Mapping[str, str]] = {
        "run_id": "id", "task_key": "id", "attempt": "attempt", "attempt_id": "id", "visibility_state": "id",
        "published_at": "ts", "publish_error": "str",
    }  # fmt: skip

    def __post_init__(self) -> None:
        if self.visibility_state not in VISIBILITY_STATES:
            raise bad_field(
                "visibility_state", f"{self.visibility_state!r} not in {sorted(VISIBILITY_STATES)}"
            )

    def idempotency_key(self) -> str:
        return f"output_visibility:{self.run_id}:{self.task_key}:{self.attempt}:{self.visibility_state}"


@dataclass(frozen=True, slots=True)
class DispatchRequested:
    run_id: str
    task_key: str
    attempt: int
    attempt_id: str
    dispatch_id: str
    worker_queue: str = DEFAULT_WORKER_QUEUE

    KINDS: ClassVar[Mapping[str, str]] = {
        "run_id": "id", "task_key": "id", "attempt": "attempt", "attempt_id": "id", "dispatch_id": "id",
        "worker_queue": "id",
    }  # fmt: skip

    def __post_init__(self) -> None:
        expected = make_dispatch_id(self.run_id, self.task_key, self.attempt)
        if self.dispatch_id != expected:
            raise bad_field("dispatch_id", f"{self.dispatch_id!r} != {expected!r}")

    def idempotency_key(self) -> str:
        return f"dispatch_req:{self.dispatch_id}"


def _check_parts(prefix: str, parsed: tuple[str | None, str | None, int | None], data: Any) -> None:
    for name, value in zip(("run_id", "task_key", "attempt"), parsed, strict=True):
        given = getattr(data, name)
        if given is not None and given != value:
            raise bad_field(name, f"{given!r} does not match the {prefix} ({value!r})")


@dataclass(frozen=True, slots=True)
class DispatchEnqueued:
    dispatch_id: str
    cloud_task_id: str
    run_id: str | None = None
    task_key: str | None = None
    attempt: int | None = None

    KINDS: ClassVar[Mapping[str, str]] = {
        "dispatch_id": "id", "cloud_task_id": "id", "run_id": "id", "task_key": "id", "attempt": "attempt",
    }  # fmt: skip

    def __post_init__(self) -> None:
        _check_parts("dispatch_id", _dispatch_parts(self.dispatch_id), self)

    def idempotency_key(self) -> str:
        return f"dispatch_ack:{self.dispatch_id}"


def _dispatch_parts(value: str) -> tuple[str, str, int]:
    try:
        run, task, attempt = parse_dispatch_id(value)
    except InvalidInput as exc:
        raise bad_field("dispatch_id", str(exc)) from exc
    return run, task, attempt


def _timer_parts(value: str) -> tuple[str | None, str | None, int | None]:
    try:
        p = parse_timer_id(value)
    except InvalidInput as exc:
        raise bad_field("timer_id", str(exc)) from exc
    return p.run_id, p.task_key, p.attempt


_TIMER_KINDS: Mapping[str, str] = {
    "timer_id": "id", "timer_type": "id", "run_id": "id", "task_key": "id", "attempt": "attempt",
    "fire_at": "ts", "cloud_task_id": "id",
}  # fmt: skip


class _TimerChecks:
    __slots__ = ()

    def __post_init__(self) -> None:
        _check_parts("timer_id", _timer_parts(self.timer_id), self)  # type: ignore[attr-defined]
        timer_type = getattr(self, "timer_type", None)
        if timer_type is not None and timer_type not in TIMER_TYPES:
            raise bad_field("timer_type", f"{timer_type!r} not in {sorted(TIMER_TYPES)}")


@dataclass(frozen=True, slots=True)
class TimerRequested(_TimerChecks):
    timer_id: str
    timer_type: str
    fire_at: int
    run_id: str | None = None
    task_key: str | None = None
    attempt: int | None = None

    KINDS: ClassVar[Mapping[str, str]] = _TIMER_KINDS

    def idempotency_key(self) -> str:
        return f"timer_req:{self.timer_id}"


@dataclass(frozen=True, slots=True)
class TimerEnqueued(_TimerChecks):
    timer_id: str
    cloud_task_id: str
    run_id: str | None = None
    task_key: str | None = None
    attempt: int | None = None

    KINDS: ClassVar[Mapping[str, str]] = _TIMER_KINDS

    def idempotency_key(self) -> str:
        return f"timer_ack:{self.timer_id}"


@dataclass(frozen=True, slots=True)
class TimerFired(_TimerChecks):
    timer_id: str
    timer_type: str
    run_id: str | None = None
    task_key: str | None = None
    attempt: int | None = None

    KINDS: ClassVar[Mapping[str, str]] = _TIMER_KINDS

    def idempotency_key(self) -> str:
        return f"timer_fired:{self.timer_id}"


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A payload whose ``type`` this version does not know; kept raw, folded as a no-op."""

    type: str
    raw: dict[str, Any]


EventData = (
    RunTriggered | PlanCreated | RunCancelRequested | RunTimedOut | TaskStarted | TaskHeartbeat | TaskFinished
    | TaskOutputVisibilityChanged | DispatchRequested | DispatchEnqueued | TimerRequested | TimerEnqueued
    | TimerFired | UnknownEvent | ScheduleDefinitionUpserted | ScheduleDefinitionRemoved
    | ScheduleStatusChanged | ScheduleTicked | RunRequestResolved | SensorDefinitionUpserted
    | SensorDefinitionRemoved | SensorStatusChanged | SensorMessageReceived | SensorEvaluationRequested
    | SensorEvaluated
    | ScheduleStatusChanged | ScheduleTicked | RunRequestResolved | BackfillCreated | BackfillChunkPlanned
    | BackfillStateChanged
)  # fmt: skip
KnownData = (
    RunTriggered | PlanCreated | RunCancelRequested | RunTimedOut | TaskStarted | TaskHeartbeat | TaskFinished
    | TaskOutputVisibilityChanged | DispatchRequested | DispatchEnqueued | TimerRequested | TimerEnqueued
    | TimerFired | ScheduleDefinitionUpserted | ScheduleDefinitionRemoved | ScheduleStatusChanged
    | ScheduleTicked | RunRequestResolved | SensorDefinitionUpserted | SensorDefinitionRemoved
    | SensorStatusChanged | SensorMessageReceived | SensorEvaluationRequested | SensorEvaluated
    | ScheduleTicked | RunRequestResolved | BackfillCreated | BackfillChunkPlanned | BackfillStateChanged
)  # fmt: skip
_KNOWN: tuple[type[KnownData], ...] = (
    RunTriggered, PlanCreated, RunCancelRequested, RunTimedOut, TaskStarted, TaskHeartbeat, TaskFinished,
    TaskOutputVisibilityChanged, DispatchRequested, DispatchEnqueued, TimerRequested, TimerEnqueued,
    TimerFired, *AUTOMATION_EVENT_TYPES,
)  # fmt: skip


def snake_case(event_type: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event_type).lower()


# data.type -> class; the reference's completion name maps to the same class.
DATA_TYPES: Mapping[str, type[KnownData]] = {
    **{snake_case(c.__name__): c for c in _KNOWN},
    "task_completion_recorded": TaskFinished,
}


def event_run_id(data: EventData) -> str | None:
    """The run a payload belongs to: its run_id, or the run inside its dispatch_id / timer_id."""
    if isinstance(data, AUTOMATION_EVENT_TYPES):
        return None  # automation state, not a run's (a resolved request names its run as data)
    if isinstance(data, UnknownEvent):
        run = data.raw.get("run_id")
        return run if isinstance(run, str) and run else None
    if data.run_id is not None:
        return data.run_id
    if isinstance(data, DispatchEnqueued):
        return _dispatch_parts(data.dispatch_id)[0]
    return _timer_parts(data.timer_id)[0]
