"""Worker-protocol messages (contracts §10): the dispatch envelope and the callback bodies.

Readers are lenient in spelling and strict in type: every camelCase field also accepts its snake_case
alias (workers written against older contracts send those), but a value of the wrong type, out of range
or outside its enum is an ``InvalidMessage`` naming the field (``details['field']``). Writers always emit
camelCase in the contract's field order and omit optionals that are None. Wire times are RFC 3339 UTC
strings; in memory they are epoch milliseconds (``*_ms`` fields).

Each message declares its wire fields once, in wire order (``_WIRE``); parsing and rendering both walk
that table, so the two directions cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

from servo.core.errors import InvalidInput, InvalidMessage
from servo.core.retry import CATEGORY_RETRYABLE
from servo.core.timefmt import format_timestamp, parse_timestamp

Outcome = Literal["SUCCEEDED", "FAILED", "CANCELLED"]
OUTCOMES: tuple[str, ...] = ("SUCCEEDED", "FAILED", "CANCELLED")
ErrorCategory = Literal[
    "USER_CODE", "DATA_QUALITY", "INFRASTRUCTURE", "CONFIGURATION", "TIMEOUT", "CANCELLED"
]
# Category -> retryable when the worker does not say (contracts §10); one table, owned by the retry policy.
CATEGORY_DEFAULT_RETRYABLE: Mapping[str, bool] = CATEGORY_RETRYABLE
ERROR_CATEGORIES: tuple[str, ...] = tuple(CATEGORY_DEFAULT_RETRYABLE)
VisibilityState = Literal["PENDING", "VISIBLE", "FAILED"]
VISIBILITY_STATES: tuple[str, ...] = ("PENDING", "VISIBLE", "FAILED")

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_CAMEL_HUMP = re.compile(r"([A-Z])")

Kind = Literal["id", "text", "int", "bool", "enum", "time", "object", "json", "nested"]


@dataclass(frozen=True, slots=True)
class _Field:
    """One wire field: ``id`` is a non-empty string, ``text`` any string, ``json`` any JSON value."""

    attr: str
    wire: str
    kind: Kind
    required: bool = False
    lo: int = 0
    hi: int = _I64_MAX
    allowed: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    nested: Any = None  # the _Message subclass of a nested object
    # Every spelling a reader accepts, camelCase first: computed once, not for every field read.
    spellings: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        snake = _snake(self.wire)
        spellings = (self.wire, *((snake,) if snake != self.wire else ()), *self.aliases)
        object.__setattr__(self, "spellings", spellings)


def _snake(camel: str) -> str:
    return _CAMEL_HUMP.sub(r"_\1", camel).lower()


def _fail(message: str, path: str, reason: str) -> InvalidMessage:
    return InvalidMessage(f"invalid {message}: {reason}", details={"field": path})


def _lookup(message: str, obj: Mapping[str, Any], f: _Field, path: str) -> Any:
    spellings = f.spellings
    found = obj.get(spellings[0])
    if len(spellings) == 1:
        return found
    for key in spellings[1:]:
        value = obj.get(key)
        if value is None:
            continue
        if found is not None and value != found:
            raise _fail(message, path, f"{path} is given twice with different values ({key})")
        found = value
    return found


def _read(message: str, obj: Mapping[str, Any], f: _Field, prefix: str) -> Any:
    path = prefix + f.wire
    value = _lookup(message, obj, f, path)
    if value is None:
        if f.required:
            raise _fail(message, path, f"missing required field {path}")
        return None
    kind = f.kind
    # Each kind returns as soon as it is checked: this runs for every field of every message read.
    if kind == "id" or kind == "text":
        if not isinstance(value, str) or (kind == "id" and not value):
            nonempty = "non-empty " if kind == "id" else ""
            raise _fail(message, path, f"{path} must be a {nonempty}string, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(message, path, f"{path} must be an integer, got {value!r}")
        if not f.lo <= value <= f.hi:
            raise _fail(message, path, f"{path} must be in {f.lo}..{f.hi}, got {value}")
        return value
    if kind == "time":
        try:
            return parse_timestamp(value)
        except InvalidInput as exc:
            raise _fail(message, path, f"{path}: {exc.message}") from exc
    if kind == "bool" and not isinstance(value, bool):
        raise _fail(message, path, f"{path} must be a boolean, got {value!r}")
    if kind == "enum" and value not in f.allowed:
        raise _fail(message, path, f"{path} must be one of {'|'.join(f.allowed)}, got {value!r}")
    if kind in ("object", "nested") and not isinstance(value, Mapping):
        raise _fail(message, path, f"{path} must be a JSON object")
    if kind == "object":
        return dict(value)
    if kind == "nested":
        return f.nested.from_json(value, _prefix=path + ".")
    return value


class _Message:
    """Parse/render by the subclass's ``_WIRE`` table; ``_finish`` fills defaults the table cannot."""

    __slots__ = ()
    _NAME: ClassVar[str]
    _WIRE: ClassVar[tuple[_Field, ...]]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, _prefix: str = "") -> Self:
        """Parse a message from decoded JSON (camelCase or snake_case keys).

        Raises:
            InvalidMessage: not an object, a missing required field, or a badly typed value;
                ``details['field']`` names the field (dotted for nested objects).
        """
        if not isinstance(obj, Mapping):
            where = _prefix.rstrip(".") or "body"
            raise _fail(cls._NAME, where, f"{where} must be a JSON object")
        values = {f.attr: _read(cls._NAME, obj, f, _prefix) for f in cls._WIRE}
        return cls(**cls._finish(values))

    @classmethod
    def _finish(cls, values: dict[str, Any]) -> dict[str, Any]:
        return values

    def to_json(self) -> dict[str, Any]:
        """Render as camelCase JSON in the contract's field order, omitting None optionals."""
        out: dict[str, Any] = {}
        for f in self._WIRE:
            value = getattr(self, f.attr)
            if value is None:
                continue
            kind = f.kind
            if kind == "time":
                value = format_timestamp(value)
            elif kind == "nested":
                value = value.to_json()
            elif kind == "object":
                value = dict(value)
            out[f.wire] = value
        return out


def _attempt_fields(lo: int) -> tuple[_Field, ...]:
    return (
        _Field("attempt", "attempt", "int", required=True, lo=lo),
        _Field("attempt_id", "attemptId", "id", required=True),
        _Field("worker_id", "workerId", "id", required=True),
    )


@dataclass(frozen=True, slots=True)
class TaskOutput(_Message):
    """What a successful (or partially successful) attempt produced."""

    materialization_id: str | None = None
    row_count: int | None = None
    byte_size: int | None = None
    output_path: str | None = None
    delta_table: str | None = None
    delta_version: int | None = None
    delta_partition: str | None = None
    output_visibility_state: VisibilityState | None = None
    published_at_ms: int | None = None
    publish_error: str | None = None
    # Servo addition: what the asset reported (ctx metadata or a returned dict). Downstream assets
    # receive it as their upstream argument, since Servo moves metadata, never data (no IO managers).
    metadata: Mapping[str, Any] | None = None

    _NAME = "task output"
    _WIRE = (
        _Field("materialization_id", "materializationId", "id"),
        _Field("row_count", "rowCount", "int"),
        _Field("byte_size", "byteSize", "int"),
        _Field("output_path", "outputPath", "id"),
        _Field("delta_table", "deltaTable", "id"),
        _Field("delta_version", "deltaVersion", "int", lo=_I64_MIN),
        _Field("delta_partition", "deltaPartition", "text"),
        _Field("output_visibility_state", "outputVisibilityState", "enum", allowed=VISIBILITY_STATES),
        _Field("published_at_ms", "publishedAt", "time"),
        _Field("publish_error", "publishError", "text"),
        _Field("metadata", "metadata", "object"),
    )


@dataclass(frozen=True, slots=True)
class TaskError(_Message):
    """A failed attempt's error; ``retryable`` is always set (the category default when not sent)."""

    category: ErrorCategory
    message: str
    retryable: bool
    stack_trace: str | None = None

    _NAME = "task error"
    _WIRE = (
        _Field("category", "category", "enum", required=True, allowed=ERROR_CATEGORIES),
        _Field("message", "message", "text", required=True),
        _Field("stack_trace", "stackTrace", "text"),
        _Field("retryable", "retryable", "bool"),
    )

    @classmethod
    def _finish(cls, values: dict[str, Any]) -> dict[str, Any]:
        if values["retryable"] is None:
            values["retryable"] = CATEGORY_DEFAULT_RETRYABLE[values["category"]]
        return values


@dataclass(frozen=True, slots=True)
class TaskMetrics(_Message):
    """Resource usage a worker reports for an attempt."""

    cpu_time_ms: int | None = None
    peak_memory_bytes: int | None = None
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None

    _NAME = "task metrics"
    _WIRE = (
        _Field("cpu_time_ms", "cpuTimeMs", "int"),
        _Field("peak_memory_bytes", "peakMemoryBytes", "int"),
        _Field("io_read_bytes", "ioReadBytes", "int"),
        _Field("io_write_bytes", "ioWriteBytes", "int"),
    )


@dataclass(frozen=True, slots=True)
class DispatchEnvelope(_Message):
    """The body Cloud Tasks POSTs to a worker for one task attempt.

    A missing ``taskId`` falls back to the legacy ``callbackTaskId``, then to ``taskKey``.
    ``partition_key`` is carried verbatim from the task row: the worker decides what it means.
    """

    tenant_id: str
    workspace_id: str
    task_id: str
    task_key: str
    run_id: str
    attempt: int
    attempt_id: str
    dispatch_id: str
    worker_queue: str
    callback_base_url: str
    task_token: str
    token_expires_at_ms: int
    execution_location_id: str | None = None
    partition_key: str | None = None
    heartbeat_timeout_sec: int | None = None
    traceparent: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)

    _NAME = "dispatch envelope"
    _WIRE = (
        _Field("tenant_id", "tenantId", "id", required=True),
        _Field("workspace_id", "workspaceId", "id", required=True),
        _Field("task_id", "taskId", "id", aliases=("callbackTaskId", "callback_task_id")),
        _Field("task_key", "taskKey", "id", required=True),
        _Field("run_id", "runId", "id", required=True),
        # A dispatch always names a real attempt; 0 is only ever a stale callback's mistake.
        _Field("attempt", "attempt", "int", required=True, lo=1),
        _Field("attempt_id", "attemptId", "id", required=True),
        _Field("dispatch_id", "dispatchId", "id", required=True),
        _Field("execution_location_id", "executionLocationId", "id"),
        _Field("partition_key", "partitionKey", "text"),
        _Field("heartbeat_timeout_sec", "heartbeatTimeoutSec", "int", lo=1),
        _Field("worker_queue", "workerQueue", "id", required=True),
        _Field("callback_base_url", "callbackBaseUrl", "id", required=True),
        _Field("task_token", "taskToken", "id", required=True),
        _Field("token_expires_at_ms", "tokenExpiresAt", "time", required=True),
        _Field("traceparent", "traceparent", "id"),
        _Field("payload", "payload", "object"),
    )

    @classmethod
    def _finish(cls, values: dict[str, Any]) -> dict[str, Any]:
        values["task_id"] = values["task_id"] or values["task_key"]
        if values["payload"] is None:
            values["payload"] = {}
        return values


@dataclass(frozen=True, slots=True)
class StartedRequest(_Message):
    """``POST /tasks/{taskId}/started``; attempt 0 parses so the handler can answer 400 first."""

    attempt: int
    attempt_id: str
    worker_id: str
    traceparent: str | None = None
    started_at_ms: int | None = None
    # Servo addition: unique per delivery of the envelope (the same in a re-sent ``started``), so the
    # control plane can refuse a second delivery of an attempt that one delivery already started.
    execution_id: str | None = None

    _NAME = "started request"
    _WIRE = (
        *_attempt_fields(lo=0),
        _Field("traceparent", "traceparent", "id"),
        _Field("started_at_ms", "startedAt", "time"),
        _Field("execution_id", "executionId", "id"),
    )


@dataclass(frozen=True, slots=True)
class StartedResponse(_Message):
    """200 body of ``started``."""

    acknowledged: bool
    server_time_ms: int

    _NAME = "started response"
    _WIRE = (
        _Field("acknowledged", "acknowledged", "bool", required=True),
        _Field("server_time_ms", "serverTime", "time", required=True),
    )


@dataclass(frozen=True, slots=True)
class HeartbeatRequest(_Message):
    """``POST /tasks/{taskId}/heartbeat``; ``progress_pct`` is 0..100."""

    attempt: int
    attempt_id: str
    worker_id: str
    traceparent: str | None = None
    heartbeat_at_ms: int | None = None
    progress_pct: int | None = None
    message: str | None = None

    _NAME = "heartbeat request"
    _WIRE = (
        *_attempt_fields(lo=0),
        _Field("traceparent", "traceparent", "id"),
        _Field("heartbeat_at_ms", "heartbeatAt", "time"),
        _Field("progress_pct", "progressPct", "int", hi=100),
        _Field("message", "message", "text"),
    )


@dataclass(frozen=True, slots=True)
class HeartbeatResponse(_Message):
    """200 body of ``heartbeat``; ``should_cancel`` is how a running worker learns of a cancel."""

    acknowledged: bool
    should_cancel: bool
    server_time_ms: int
    cancel_reason: str | None = None

    _NAME = "heartbeat response"
    _WIRE = (
        _Field("acknowledged", "acknowledged", "bool", required=True),
        _Field("should_cancel", "shouldCancel", "bool", required=True),
        _Field("cancel_reason", "cancelReason", "id"),
        _Field("server_time_ms", "serverTime", "time", required=True),
    )


@dataclass(frozen=True, slots=True)
class CompletedRequest(_Message):
    """``POST …/completed``; ``result`` is read as ``output``; ``partialProgress`` is any JSON."""

    attempt: int
    attempt_id: str
    worker_id: str
    outcome: Outcome
    traceparent: str | None = None
    completed_at_ms: int | None = None
    output: TaskOutput | None = None
    error: TaskError | None = None
    metrics: TaskMetrics | None = None
    cancelled_during_phase: str | None = None
    partial_progress: Any = None

    _NAME = "completed request"
    _WIRE = (
        *_attempt_fields(lo=0),
        _Field("outcome", "outcome", "enum", required=True, allowed=OUTCOMES),
        _Field("traceparent", "traceparent", "id"),
        _Field("completed_at_ms", "completedAt", "time"),
        _Field("output", "output", "nested", aliases=("result",), nested=TaskOutput),
        _Field("error", "error", "nested", nested=TaskError),
        _Field("metrics", "metrics", "nested", nested=TaskMetrics),
        _Field("cancelled_during_phase", "cancelledDuringPhase", "id"),
        _Field("partial_progress", "partialProgress", "json"),
    )


@dataclass(frozen=True, slots=True)
class CompletedResponse(_Message):
    """200 body of ``completed``; ``final_state`` echoes the reported outcome (FAILED even if retrying)."""

    acknowledged: bool
    final_state: Outcome
    server_time_ms: int

    _NAME = "completed response"
    _WIRE = (
        _Field("acknowledged", "acknowledged", "bool", required=True),
        _Field("final_state", "finalState", "enum", required=True, allowed=OUTCOMES),
        _Field("server_time_ms", "serverTime", "time", required=True),
    )


@dataclass(frozen=True, slots=True)
class CallbackError(_Message):
    """A callback's non-2xx body: ``error`` is the machine code (``attempt_mismatch``, …)."""

    error: str
    message: str
    state: str | None = None
    expected_attempt: int | None = None
    received_attempt: int | None = None
    expected_attempt_id: str | None = None
    received_attempt_id: str | None = None

    _NAME = "callback error"
    _WIRE = (
        _Field("error", "error", "id", required=True),
        _Field("message", "message", "text", required=True),
        _Field("state", "state", "id"),
        _Field("expected_attempt", "expectedAttempt", "int"),
        _Field("received_attempt", "receivedAttempt", "int"),
        _Field("expected_attempt_id", "expectedAttemptId", "text"),
        _Field("received_attempt_id", "receivedAttemptId", "text"),
    )
