"""The ledger event model: envelope, one frozen dataclass per data type, and the byte-exact codec.

Wire shape: contracts §6 (snake_case envelope, ``data`` tagged with ``type``, canonical JSON, optional
fields omitted when None); Servo's object path is ``ledger/orchestration/{event_id}.json`` (design §5).
Timestamps are RFC 3339 strings on the wire and epoch milliseconds in Python. The worker structs
``output``/``error``/``metrics`` are kept as their camelCase JSON objects; treat them as read-only.

Codec log (rename nothing stored without a line here):
- v1: contracts §6 types; TaskFinished also reads as TaskCompletionRecorded (wire name kept);
  Servo additions RunTriggered.timeout_seconds/.traceparent, TaskFinished.error_category,
  TaskDef.timeout_seconds and the RunTimedOut event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import CanonicalJsonError, InvalidEvent, InvalidId, InvalidInput
from servo.core.ids import dispatch_id as make_dispatch_id
from servo.core.ids import parse_dispatch_id, parse_timer_id, validate_ulid
from servo.core.taskdef import DEFAULT_WORKER_QUEUE, TaskDef
from servo.core.timefmt import format_timestamp, parse_timestamp

# ----------------------------------------------------------------------------------------- payload types
# Field kinds drive the one generic codec below: ``id`` non-empty str, ``str`` any str, ``int`` >= 0,
# ``attempt`` >= 1, ``pct`` 0..100, ``ts`` RFC 3339 <-> epoch ms, ``obj`` JSON object, ``labels``
# str->str object, ``strs`` list of str, ``tasks`` TaskDef list, ``vis`` OutputVisibility, ``bool``.
# A field with a default of None is optional and omitted when None.

OUTCOMES = frozenset({"succeeded", "failed", "skipped", "cancelled"})
VISIBILITY_STATES = frozenset({"pending", "visible", "failed"})
TIMER_TYPES = frozenset({"retry", "heartbeat_check", "cron", "sla_check"})
ERROR_CATEGORIES = frozenset(
    {"USER_CODE", "DATA_QUALITY", "INFRASTRUCTURE", "CONFIGURATION", "TIMEOUT", "CANCELLED"}
)
TRIGGER_TYPES = frozenset({"manual", "cron", "materialization", "webhook", "sensor"})


def _bad(field: str, message: str) -> InvalidEvent:
    return InvalidEvent(f"data.{field}: {message}", details={"field": f"data.{field}"})


@dataclass(frozen=True, slots=True)
class OutputVisibility:
    """The visibility block of a completion (lowercase state on the wire)."""

    visibility_state: str
    published_at: int | None = None
    publish_error: str | None = None

    KINDS: ClassVar[Mapping[str, str]] = {
        "visibility_state": "id",
        "published_at": "ts",
        "publish_error": "str",
    }

    def __post_init__(self) -> None:
        if self.visibility_state not in VISIBILITY_STATES:
            raise _bad(
                "output_visibility.visibility_state",
                f"{self.visibility_state!r} not in {sorted(VISIBILITY_STATES)}",
            )


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
            raise _bad("trigger.type", f"{self.trigger.get('type')!r} not in {sorted(TRIGGER_TYPES)}")

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
            raise _bad("tasks", "a plan needs at least one task")
        known = set(keys)
        if len(known) != len(keys):
            raise _bad("tasks", "duplicate task key")
        for t in self.tasks:
            if not t.key or ":" in t.key:
                raise _bad(
                    "tasks.key", f"{t.key!r} must be non-empty and contain no ':' (timer ids split on it)"
                )
            if t.max_attempts < 1:
                raise _bad("tasks.max_attempts", f"{t.key}: must be >= 1")
            for dep in t.depends_on:
                if dep not in known or dep == t.key:
                    raise _bad(
                        "tasks.depends_on", f"{t.key} depends on {dep!r}, which is not another planned task"
                    )
            if len(set(t.depends_on)) != len(t.depends_on):
                raise _bad("tasks.depends_on", f"{t.key} lists a dependency twice")

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

    KINDS: ClassVar[Mapping[str, str]] = {
        **_ATTEMPT_KINDS, "outcome": "id", "materialization_id": "str", "error_message": "str",
        "output": "obj", "error": "obj", "metrics": "obj", "cancelled_during_phase": "str",
        "partial_progress_json": "str",
        "asset_key": "str", "partition_key": "str", "code_version": "str", "output_visibility": "vis",
        "error_category": "id",
    }  # fmt: skip

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise _bad("outcome", f"{self.outcome!r} not in {sorted(OUTCOMES)}")
        if self.error_category is not None and self.error_category not in ERROR_CATEGORIES:
            raise _bad("error_category", f"{self.error_category!r} not in {sorted(ERROR_CATEGORIES)}")
        if self.error is not None:
            if self.error.get("category") not in ERROR_CATEGORIES:
                raise _bad(
                    "error.category", f"{self.error.get('category')!r} not in {sorted(ERROR_CATEGORIES)}"
                )
            if not isinstance(self.error.get("retryable", False), bool):
                raise _bad("error.retryable", "must be a bool")

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
            raise _bad("visibility_state", f"{self.visibility_state!r} not in {sorted(VISIBILITY_STATES)}")

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
            raise _bad("dispatch_id", f"{self.dispatch_id!r} != {expected!r}")

    def idempotency_key(self) -> str:
        return f"dispatch_req:{self.dispatch_id}"


def _check_parts(prefix: str, parsed: tuple[str | None, str | None, int | None], data: Any) -> None:
    for name, value in zip(("run_id", "task_key", "attempt"), parsed, strict=True):
        given = getattr(data, name)
        if given is not None and given != value:
            raise _bad(name, f"{given!r} does not match the {prefix} ({value!r})")


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
        raise _bad("dispatch_id", str(exc)) from exc
    return run, task, attempt


def _timer_parts(value: str) -> tuple[str | None, str | None, int | None]:
    try:
        p = parse_timer_id(value)
    except InvalidInput as exc:
        raise _bad("timer_id", str(exc)) from exc
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
            raise _bad("timer_type", f"{timer_type!r} not in {sorted(TIMER_TYPES)}")


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
    | TimerFired | UnknownEvent
)  # fmt: skip
KnownData = (
    RunTriggered | PlanCreated | RunCancelRequested | RunTimedOut | TaskStarted | TaskHeartbeat | TaskFinished
    | TaskOutputVisibilityChanged | DispatchRequested | DispatchEnqueued | TimerRequested | TimerEnqueued
    | TimerFired
)  # fmt: skip
_KNOWN: tuple[type[KnownData], ...] = (
    RunTriggered, PlanCreated, RunCancelRequested, RunTimedOut, TaskStarted, TaskHeartbeat, TaskFinished,
    TaskOutputVisibilityChanged, DispatchRequested, DispatchEnqueued, TimerRequested, TimerEnqueued,
    TimerFired,
)  # fmt: skip


def _snake(event_type: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event_type).lower()


# data.type -> class; the reference's completion name maps to the same class.
DATA_TYPES: Mapping[str, type[KnownData]] = {
    **{_snake(c.__name__): c for c in _KNOWN},
    "task_completion_recorded": TaskFinished,
}


def event_run_id(data: EventData) -> str | None:
    """The run a payload belongs to: its run_id, or the run inside its dispatch_id / timer_id."""
    if isinstance(data, UnknownEvent):
        run = data.raw.get("run_id")
        return run if isinstance(run, str) and run else None
    if data.run_id is not None:
        return data.run_id
    if isinstance(data, DispatchEnqueued):
        return _dispatch_parts(data.dispatch_id)[0]
    return _timer_parts(data.timer_id)[0]


# --------------------------------------------------------------------------------------- field codec


def _encode_value(kind: str, value: Any) -> Any:
    if kind == "ts":
        return format_timestamp(value)
    if kind == "strs":
        return list(value)
    if kind == "tasks":
        return [_taskdef_to_json(t) for t in value]
    if kind == "vis":
        return _struct_to_json(value)
    return value


def _struct_to_json(data: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(data):
        value = getattr(data, f.name)
        if value is not None:
            out[f.name] = _encode_value(data.KINDS[f.name], value)
    return out


def data_to_json(data: EventData, type_name: str) -> dict[str, Any]:
    """The ``data`` object of an event, tagged with ``type_name``."""
    if isinstance(data, UnknownEvent):
        return dict(data.raw)
    return {**_struct_to_json(data), "type": type_name}


def _decode_value(kind: str, name: str, value: Any) -> Any:
    if kind in ("id", "str"):
        if not isinstance(value, str) or (kind == "id" and not value):
            raise _bad(name, f"must be a {'non-empty ' if kind == 'id' else ''}string, got {value!r}")
        return value
    if kind in ("int", "attempt", "pct"):
        low = 1 if kind == "attempt" else 0
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (kind == "pct" and value > 100)
        ):
            raise _bad(
                name,
                f"must be an integer >= {low}{' and <= 100' if kind == 'pct' else ''}, got {value!r}",
            )
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(name, f"must be a bool, got {value!r}")
        return value
    if kind == "ts":
        if not isinstance(value, str):
            raise _bad(name, f"must be an RFC 3339 string, got {value!r}")
        try:
            return parse_timestamp(value)
        except InvalidInput as exc:
            raise _bad(name, str(exc)) from exc
    if kind in ("obj", "labels"):
        if not isinstance(value, dict):
            raise _bad(name, "must be an object")
        if kind == "labels" and not all(isinstance(v, str) for v in value.values()):
            raise _bad(name, "label values must be strings")
        return value
    if kind == "strs":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(name, "must be a list of strings")
        return tuple(value)
    if kind == "tasks":
        if not isinstance(value, list):
            raise _bad(name, "must be a list of task definitions")
        return tuple(_taskdef_from_json(v) for v in value)
    if kind == "vis":
        if not isinstance(value, dict):
            raise _bad(name, "must be an object")
        return _struct_from_json(OutputVisibility, value, prefix=f"{name}.")
    raise AssertionError(f"unknown field kind {kind}")  # pragma: no cover - a typo in a KINDS table


def _struct_from_json(cls: Any, raw: Mapping[str, Any], *, prefix: str = "") -> Any:
    known = {f.name for f in fields(cls)}
    extra = sorted(set(raw) - known - ({"type"} if not prefix else set()))
    if extra:
        raise _bad(prefix + extra[0], "unknown field")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in raw:
            kwargs[f.name] = _decode_value(cls.KINDS[f.name], prefix + f.name, raw[f.name])
        elif f.default is f.default_factory:  # both MISSING: a required field
            raise _bad(prefix + f.name, "missing")
    return cls(**kwargs)


def data_from_json(cls: type[KnownData], raw: Mapping[str, Any]) -> KnownData:
    """Decode a ``data`` object into ``cls``, strictly (unknown or mistyped fields are errors)."""
    result: KnownData = _struct_from_json(cls, raw)
    return result


_TASKDEF_KINDS: Mapping[str, str] = {
    "key": "id", "depends_on": "strs", "asset_key": "str", "partition_key": "str", "max_attempts": "attempt",
    "heartbeat_timeout_sec": "int", "requires_visible_output": "bool", "timeout_seconds": "int",
}  # fmt: skip
_TASKDEF_OPTIONAL = frozenset({"asset_key", "partition_key", "timeout_seconds"})


def _taskdef_to_json(t: TaskDef) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in _TASKDEF_KINDS.items():
        value = getattr(t, name)
        if value is not None or name not in _TASKDEF_OPTIONAL:
            out[name] = _encode_value(kind, value)
    return out


def _taskdef_from_json(raw: Any) -> TaskDef:
    if not isinstance(raw, dict):
        raise _bad("tasks", "each task must be an object")
    extra = sorted(set(raw) - set(_TASKDEF_KINDS))
    if extra:
        raise _bad(f"tasks.{extra[0]}", "unknown field")
    if "key" not in raw:
        raise _bad("tasks.key", "missing")
    # Defaults apply to fields the reference may omit (serde defaults); the writer always writes them.
    kwargs = {n: _decode_value(k, f"tasks.{n}", raw[n]) for n, k in _TASKDEF_KINDS.items() if n in raw}
    return TaskDef(**kwargs)


__all__ = [
    "DispatchEnqueued",
    "DispatchRequested",
    "EncodedEvent",
    "Event",
    "EventData",
    "PlanCreated",
    "RunCancelRequested",
    "RunTimedOut",
    "RunTriggered",
    "TaskFinished",
    "TaskHeartbeat",
    "TaskOutputVisibilityChanged",
    "TaskStarted",
    "TimerEnqueued",
    "TimerFired",
    "TimerRequested",
    "UnknownEvent",
    "as_event",
    "decode_event",
    "encode_event",
    "event_body",
    "event_id_from_object_name",
    "ledger_object_name",
    "make_event",
]

EVENT_VERSION = 1
LEDGER_PREFIX = "ledger/orchestration/"
# The reference writes completions under this name; Servo's own name is TaskFinished (design §6).
COMPLETION_RECORDED = "TaskCompletionRecorded"
_ENVELOPE_KEYS = frozenset(
    {
        "event_id",
        "event_type",
        "event_version",
        "timestamp",
        "source",
        "tenant_id",
        "workspace_id",
        "idempotency_key",
        "correlation_id",
        "causation_id",
        "data",
    }
)
_OBJECT_NAME_RE = re.compile(r"(?:.*/)?ledger/orchestration/([0-9A-Za-z]{26})\.json")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One ledger event. ``event_id`` (a ULID) is the replay order; ``timestamp_ms`` is metadata."""

    event_id: str
    event_type: str
    event_version: int = EVENT_VERSION
    timestamp_ms: int
    source: str
    tenant_id: str
    workspace_id: str
    idempotency_key: str
    correlation_id: str | None = None
    causation_id: str | None = None
    data: EventData

    @property
    def run_id(self) -> str | None:
        """The run this event belongs to (from data, a dispatch_id or a timer_id); None for none."""
        run = event_run_id(self.data)
        if run is None and isinstance(self.data, UnknownEvent):
            return self.correlation_id
        return run


def ledger_object_name(event_id: str) -> str:
    """The object name of an event under ``{tenant}/{workspace}/`` (design §5)."""
    _ulid(event_id, "event_id")
    return f"{LEDGER_PREFIX}{event_id}.json"


def event_id_from_object_name(name: str) -> str:
    """The event id of a ledger object name (with or without the tenant/workspace prefix)."""
    match = _OBJECT_NAME_RE.fullmatch(name)
    if match is None:
        raise InvalidEvent(f"not a ledger event object name: {name!r}", details={"field": "name"})
    return _ulid(match.group(1), "name")


def make_event(
    data: EventData,
    *,
    event_id: str,
    timestamp_ms: int,
    tenant_id: str,
    workspace_id: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    event_type: str | None = None,
) -> Event:
    """Build an event; the idempotency key is computed from the data (contracts §6), never typed.

    Args:
        data: the payload.
        event_id: a fresh ULID from the caller's id generator.
        timestamp_ms: the server clock, epoch ms.
        tenant_id: storage scope.
        workspace_id: storage scope.
        correlation_id: defaults to the event's run id.
        causation_id: the event that caused this one, if any.
        event_type: only ``TaskCompletionRecorded`` may override the type's own name (TaskFinished).
    """
    if isinstance(data, UnknownEvent):
        raise InvalidEvent("make_event cannot build an unknown event type", details={"field": "data"})
    name = type(data).__name__
    if event_type is not None and event_type != name:
        if not (isinstance(data, TaskFinished) and event_type == COMPLETION_RECORDED):
            raise InvalidEvent(
                f"event_type {event_type!r} does not match {name}", details={"field": "event_type"}
            )
        name = event_type
    _ulid(event_id, "event_id")
    _check_int(timestamp_ms, "timestamp")
    event = Event(
        event_id=event_id,
        event_type=name,
        timestamp_ms=timestamp_ms,
        source=f"servo-flow/{tenant_id}/{workspace_id}",
        tenant_id=tenant_id,
        workspace_id=workspace_id,
        idempotency_key=data.idempotency_key(),
        correlation_id=correlation_id if correlation_id is not None else event_run_id(data),
        causation_id=causation_id,
        data=data,
    )
    # Encoding once proves the event can be written (no floats, valid ids) before anyone appends it.
    encode_event(event)
    return event


def encode_event(event: Event) -> bytes:
    """The canonical-JSON bytes of an event (contracts §1, §6)."""
    body: dict[str, Any] = {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "event_version": event.event_version,
        "timestamp": format_timestamp(event.timestamp_ms),
        "source": event.source,
        "tenant_id": event.tenant_id,
        "workspace_id": event.workspace_id,
        "idempotency_key": event.idempotency_key,
        "data": data_to_json(event.data, _snake(event.event_type)),
    }
    if event.correlation_id is not None:
        body["correlation_id"] = event.correlation_id
    if event.causation_id is not None:
        body["causation_id"] = event.causation_id
    try:
        return canonical_bytes(body)
    except CanonicalJsonError as exc:
        raise InvalidEvent(
            f"event {event.event_id} cannot be encoded: {exc}", details={"field": "data"}
        ) from exc


def decode_event(data: bytes) -> Event:
    """Decode one ledger object, strictly: any bad field raises ``InvalidEvent`` naming it.

    An unknown ``data.type`` decodes to ``UnknownEvent`` (skipped by the fold, behavior §0).
    """
    try:
        body = loads_strict(data)
    except CanonicalJsonError as exc:
        raise InvalidEvent(f"event is not valid JSON: {exc}", details={"field": "<body>"}) from exc
    if not isinstance(body, dict):
        raise InvalidEvent("event must be a JSON object", details={"field": "<body>"})
    extra = sorted(set(body) - _ENVELOPE_KEYS)
    if extra:
        raise InvalidEvent(f"event has unknown field {extra[0]!r}", details={"field": extra[0]})
    event_id = _ulid(_req_str(body, "event_id"), "event_id")
    event_type = _req_str(body, "event_type")
    version = body.get("event_version")
    if version != EVENT_VERSION or isinstance(version, bool):
        raise InvalidEvent(
            f"event_version must be {EVENT_VERSION}, got {version!r}", details={"field": "event_version"}
        )
    try:
        timestamp_ms = parse_timestamp(_req_str(body, "timestamp"))
    except InvalidInput as exc:
        raise InvalidEvent(f"timestamp: {exc}", details={"field": "timestamp"}) from exc
    tenant, workspace, source = (
        _req_str(body, "tenant_id"),
        _req_str(body, "workspace_id"),
        _req_str(body, "source"),
    )
    parts = source.split("/")
    # Any producer prefix (``arco-flow``, ``servo-flow``) is accepted; its scope must be the envelope's.
    if len(parts) != 3 or not parts[0] or parts[1:] != [tenant, workspace]:
        raise InvalidEvent(
            f"source {source!r} does not match {tenant}/{workspace}", details={"field": "source"}
        )
    raw = body.get("data")
    if not isinstance(raw, dict):
        raise InvalidEvent("data must be an object", details={"field": "data"})
    payload = _decode_data(raw, event_type)
    key = _req_str(body, "idempotency_key")
    if not isinstance(payload, UnknownEvent) and key != payload.idempotency_key():
        raise InvalidEvent(
            f"idempotency_key {key!r} != expected {payload.idempotency_key()!r}",
            details={"field": "idempotency_key"},
        )
    return Event(
        event_id=event_id,
        event_type=event_type,
        timestamp_ms=timestamp_ms,
        source=source,
        tenant_id=tenant,
        workspace_id=workspace,
        idempotency_key=key,
        correlation_id=_opt_str(body, "correlation_id"),
        causation_id=_opt_str(body, "causation_id"),
        data=payload,
    )


def _decode_data(raw: dict[str, Any], event_type: str) -> EventData:
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise InvalidEvent("data.type must be a string", details={"field": "data.type"})
    cls = DATA_TYPES.get(kind)
    if cls is None:
        return UnknownEvent(type=kind, raw=raw)
    if kind != _snake(event_type) or not (cls.__name__ == event_type or cls is TaskFinished):
        raise InvalidEvent(
            f"data.type {kind!r} does not match event_type {event_type!r}", details={"field": "data.type"}
        )
    try:
        return data_from_json(cls, raw)
    except InvalidEvent:
        raise
    except (InvalidId, InvalidInput) as exc:
        raise InvalidEvent(f"data: {exc}", details={"field": "data"}) from exc


def _ulid(value: str, name: str) -> str:
    try:
        validate_ulid(value)
    except InvalidInput as exc:
        raise InvalidEvent(f"{name}: {exc}", details={"field": name}) from exc
    return value


def _check_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidEvent(f"{name} must be a non-negative integer, got {value!r}", details={"field": name})
    return value


def _req_str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{name} must be a non-empty string, got {value!r}", details={"field": name})
    return value


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    return _req_str(body, name) if name in body else None


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A stored event kept as its canonical JSON until its fields are needed.

    Compaction loads a run's applied events only to know their ids; decoding them all (a large
    PlanCreated is thousands of TaskDefs) is needed only for the rare re-fold of a late event.
    """

    body: str

    def decode(self) -> Event:
        return decode_event(self.body.encode("utf-8"))


def as_event(value: Event | EncodedEvent) -> Event:
    return value.decode() if isinstance(value, EncodedEvent) else value


def event_body(value: Event | EncodedEvent) -> str:
    """The canonical JSON of an event, without re-encoding one that was never decoded."""
    return value.body if isinstance(value, EncodedEvent) else encode_event(value).decode("utf-8")
