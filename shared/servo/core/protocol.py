"""Worker-protocol messages (contracts §10): the dispatch envelope and the callback bodies.

Readers are lenient in spelling and strict in type: every camelCase field also accepts its snake_case
alias (workers written against older contracts send those), but a value of the wrong type, out of range
or outside its enum is an ``InvalidMessage`` naming the field (``details['field']``). Writers always emit
camelCase in the contract's field order and omit optionals that are None. Wire times are RFC 3339 UTC
strings; in memory they are epoch milliseconds (``*_ms`` fields).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from servo.core.errors import InvalidInput, InvalidMessage
from servo.core.timefmt import format_timestamp, parse_timestamp

Outcome = Literal["SUCCEEDED", "FAILED", "CANCELLED"]
OUTCOMES: tuple[str, ...] = ("SUCCEEDED", "FAILED", "CANCELLED")
ErrorCategory = Literal[
    "USER_CODE", "DATA_QUALITY", "INFRASTRUCTURE", "CONFIGURATION", "TIMEOUT", "CANCELLED"
]
# Category -> retryable when the worker does not say (contracts §10, behavior §1.1).
CATEGORY_DEFAULT_RETRYABLE: Mapping[str, bool] = {
    "USER_CODE": True,
    "DATA_QUALITY": False,
    "INFRASTRUCTURE": True,
    "CONFIGURATION": False,
    "TIMEOUT": True,
    "CANCELLED": False,
}
VisibilityState = Literal["PENDING", "VISIBLE", "FAILED"]
VISIBILITY_STATES: tuple[str, ...] = ("PENDING", "VISIBLE", "FAILED")

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_CAMEL_HUMP = re.compile(r"([A-Z])")


def _snake(camel: str) -> str:
    return _CAMEL_HUMP.sub(r"_\1", camel).lower()


class _Reader:
    """Typed access to one JSON object of a message; ``prefix`` names nested objects in errors."""

    def __init__(self, message: str, obj: object, prefix: str = "") -> None:
        self.message = message
        self.prefix = prefix
        if not isinstance(obj, Mapping):
            where = prefix.rstrip(".") or "body"
            raise self._error(where, f"{where} must be a JSON object", path=where)
        self.obj = obj

    def _error(self, name: str, reason: str, *, path: str | None = None) -> InvalidMessage:
        path = path if path is not None else self.prefix + name
        return InvalidMessage(f"invalid {self.message}: {reason}", details={"field": path})

    def raw(self, name: str, *aliases: str) -> Any:
        """The value under ``name``, its snake_case alias or an explicit alias; None when absent/null."""
        found: Any = None
        for key in (name, _snake(name), *aliases):
            value = self.obj.get(key)
            if value is None:
                continue
            if found is not None and value != found:
                raise self._error(name, f"{self.prefix}{name} is given twice with different values ({key})")
            found = value
        return found

    def _required(self, name: str, value: Any) -> Any:
        if value is None:
            raise self._error(name, f"missing required field {self.prefix}{name}")
        return value

    def text(self, name: str, *aliases: str, required: bool = True, non_empty: bool = True) -> Any:
        value = self.raw(name, *aliases)
        if value is None:
            return self._required(name, value) if required else None
        if not isinstance(value, str) or (non_empty and not value):
            kind = "a non-empty string" if non_empty else "a string"
            raise self._error(name, f"{self.prefix}{name} must be {kind}, got {value!r}")
        return value

    def integer(self, name: str, *, lo: int, hi: int, required: bool = True) -> Any:
        value = self.raw(name)
        if value is None:
            return self._required(name, value) if required else None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(name, f"{self.prefix}{name} must be an integer, got {value!r}")
        if not lo <= value <= hi:
            raise self._error(name, f"{self.prefix}{name} must be in {lo}..{hi}, got {value}")
        return value

    def boolean(self, name: str, *, required: bool = True) -> Any:
        value = self.raw(name)
        if value is None:
            return self._required(name, value) if required else None
        if not isinstance(value, bool):
            raise self._error(name, f"{self.prefix}{name} must be a boolean, got {value!r}")
        return value

    def enum(self, name: str, allowed: Iterable[str], *, required: bool = True) -> Any:
        value = self.raw(name)
        if value is None:
            return self._required(name, value) if required else None
        allowed = tuple(allowed)
        if value not in allowed:
            raise self._error(name, f"{self.prefix}{name} must be one of {'|'.join(allowed)}, got {value!r}")
        return value

    def time_ms(self, name: str, *, required: bool = False) -> Any:
        value = self.raw(name)
        if value is None:
            return self._required(name, value) if required else None
        try:
            return parse_timestamp(value)
        except InvalidInput as exc:
            raise self._error(name, f"{self.prefix}{name}: {exc.message}") from exc

    def obj_or_none(self, name: str, *aliases: str) -> Mapping[str, Any] | None:
        value = self.raw(name, *aliases)
        if value is not None and not isinstance(value, Mapping):
            raise self._error(name, f"{self.prefix}{name} must be a JSON object")
        return value


def _render(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    return {key: value for key, value in pairs if value is not None}


def _ts(ms: int | None) -> str | None:
    return None if ms is None else format_timestamp(ms)


_NON_NEG = {"lo": 0, "hi": _I64_MAX}


@dataclass(frozen=True, slots=True)
class TaskOutput:
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

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, _prefix: str = "") -> Self:
        r = _Reader("task output", obj, _prefix)
        return cls(
            materialization_id=r.text("materializationId", required=False),
            row_count=r.integer("rowCount", **_NON_NEG, required=False),
            byte_size=r.integer("byteSize", **_NON_NEG, required=False),
            output_path=r.text("outputPath", required=False),
            delta_table=r.text("deltaTable", required=False),
            delta_version=r.integer("deltaVersion", lo=_I64_MIN, hi=_I64_MAX, required=False),
            delta_partition=r.text("deltaPartition", required=False, non_empty=False),
            output_visibility_state=r.enum("outputVisibilityState", VISIBILITY_STATES, required=False),
            published_at_ms=r.time_ms("publishedAt"),
            publish_error=r.text("publishError", required=False, non_empty=False),
        )

    def to_json(self) -> dict[str, Any]:
        return _render(
            [
                ("materializationId", self.materialization_id),
                ("rowCount", self.row_count),
                ("byteSize", self.byte_size),
                ("outputPath", self.output_path),
                ("deltaTable", self.delta_table),
                ("deltaVersion", self.delta_version),
                ("deltaPartition", self.delta_partition),
                ("outputVisibilityState", self.output_visibility_state),
                ("publishedAt", _ts(self.published_at_ms)),
                ("publishError", self.publish_error),
            ]
        )


@dataclass(frozen=True, slots=True)
class TaskError:
    """A failed attempt's error; ``retryable`` is always set (the category default when not sent)."""

    category: ErrorCategory
    message: str
    retryable: bool
    stack_trace: str | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, _prefix: str = "") -> Self:
        r = _Reader("task error", obj, _prefix)
        category = r.enum("category", CATEGORY_DEFAULT_RETRYABLE)
        message = r.text("message", non_empty=False)
        retryable = r.boolean("retryable", required=False)
        return cls(
            category=category,
            message=message,
            retryable=CATEGORY_DEFAULT_RETRYABLE[category] if retryable is None else retryable,
            stack_trace=r.text("stackTrace", required=False, non_empty=False),
        )

    def to_json(self) -> dict[str, Any]:
        return _render(
            [
                ("category", self.category),
                ("message", self.message),
                ("stackTrace", self.stack_trace),
                ("retryable", self.retryable),
            ]
        )


@dataclass(frozen=True, slots=True)
class TaskMetrics:
    """Resource usage a worker reports for an attempt."""

    cpu_time_ms: int | None = None
    peak_memory_bytes: int | None = None
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, _prefix: str = "") -> Self:
        r = _Reader("task metrics", obj, _prefix)
        return cls(
            cpu_time_ms=r.integer("cpuTimeMs", **_NON_NEG, required=False),
            peak_memory_bytes=r.integer("peakMemoryBytes", **_NON_NEG, required=False),
            io_read_bytes=r.integer("ioReadBytes", **_NON_NEG, required=False),
            io_write_bytes=r.integer("ioWriteBytes", **_NON_NEG, required=False),
        )

    def to_json(self) -> dict[str, Any]:
        return _render(
            [
                ("cpuTimeMs", self.cpu_time_ms),
                ("peakMemoryBytes", self.peak_memory_bytes),
                ("ioReadBytes", self.io_read_bytes),
                ("ioWriteBytes", self.io_write_bytes),
            ]
        )


@dataclass(frozen=True, slots=True)
class DispatchEnvelope:
    """The body Cloud Tasks POSTs to a worker for one task attempt."""

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

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        """Parse an envelope; a missing ``taskId`` falls back to ``callbackTaskId``, then ``taskKey``.

        Raises:
            InvalidMessage: a missing required field or a badly typed value.
        """
        r = _Reader("dispatch envelope", obj)
        task_key = r.text("taskKey")
        task_id = r.text("taskId", required=False) or r.text("callbackTaskId", required=False) or task_key
        payload = r.obj_or_none("payload")
        return cls(
            tenant_id=r.text("tenantId"),
            workspace_id=r.text("workspaceId"),
            task_id=task_id,
            task_key=task_key,
            run_id=r.text("runId"),
            # A dispatch always names a real attempt; 0 is only ever a stale callback's mistake.
            attempt=r.integer("attempt", lo=1, hi=_I64_MAX),
            attempt_id=r.text("attemptId"),
            dispatch_id=r.text("dispatchId"),
            worker_queue=r.text("workerQueue"),
            callback_base_url=r.text("callbackBaseUrl"),
            task_token=r.text("taskToken"),
            token_expires_at_ms=r.time_ms("tokenExpiresAt", required=True),
            execution_location_id=r.text("executionLocationId", required=False),
            # Verbatim from the task row: the worker, not the envelope parser, decides what a key means.
            partition_key=r.text("partitionKey", required=False, non_empty=False),
            heartbeat_timeout_sec=r.integer("heartbeatTimeoutSec", lo=1, hi=_I64_MAX, required=False),
            traceparent=r.text("traceparent", required=False),
            payload=dict(payload) if payload is not None else {},
        )

    def to_json(self) -> dict[str, Any]:
        return _render(
            [
                ("tenantId", self.tenant_id),
                ("workspaceId", self.workspace_id),
                ("taskId", self.task_id),
                ("taskKey", self.task_key),
                ("runId", self.run_id),
                ("attempt", self.attempt),
                ("attemptId", self.attempt_id),
                ("dispatchId", self.dispatch_id),
                ("executionLocationId", self.execution_location_id),
                ("partitionKey", self.partition_key),
                ("heartbeatTimeoutSec", self.heartbeat_timeout_sec),
                ("workerQueue", self.worker_queue),
                ("callbackBaseUrl", self.callback_base_url),
                ("taskToken", self.task_token),
                ("tokenExpiresAt", format_timestamp(self.token_expires_at_ms)),
                ("traceparent", self.traceparent),
                ("payload", dict(self.payload)),
            ]
        )


def _attempt_fields(r: _Reader) -> tuple[int, str, str]:
    # attempt 0 is parsed so the callback handler can answer 400 invalid_argument before any lookup.
    return r.integer("attempt", lo=0, hi=_I64_MAX), r.text("attemptId"), r.text("workerId")


@dataclass(frozen=True, slots=True)
class StartedRequest:
    """``POST /tasks/{taskId}/started``."""

    attempt: int
    attempt_id: str
    worker_id: str
    traceparent: str | None = None
    started_at_ms: int | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        r = _Reader("started request", obj)
        attempt, attempt_id, worker_id = _attempt_fields(r)
        return cls(
            attempt, attempt_id, worker_id, r.text("traceparent", required=False), r.time_ms("startedAt")
        )

    def to_json(self) -> dict[str, Any]:
        return _render(
            [
                ("attempt", self.attempt),
                ("attemptId", self.attempt_id),
                ("workerId", self.worker_id),
                ("traceparent", self.traceparent),
                ("startedAt", _ts(self.started_at_ms)),
            ]
        )


@dataclass(frozen=True, slots=True)
class StartedResponse:
    """200 body of ``started``."""

    acknowledged: bool
    server_time_ms: int

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        r = _Reader("started response", obj)
        return cls(r.boolean("acknowledged"), r.time_ms("serverTime", required=True))

    def to_json(self) -> dict[str, Any]:
        return {"acknowledged": self.acknowledged, "serverTime": format_timestamp(self.server_time_ms)}


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    """``POST /tasks/{taskId}/heartbeat``."""

    attempt: int
    attempt_id: str
    worker_id: str
    traceparent: str | None = None
    heartbeat_at_ms: int | None = None
    progress_pct: int | None = None
    message: str | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        r = _Reader("heartbeat request", obj)
        attempt, attempt_id, worker_id = _attempt_fields(r)
        return cls(
            attempt=attempt,
            attempt_id=attempt_id,
            worker_id=worker_id,
            traceparent=r.text("traceparent", required=False),
            heartbeat_at_ms=r.time_ms("heartbeatAt"),
            progress_pct=r.integer("progressPct", lo=0, hi=100, required=False),
            message=r.text("message", required=False, non_empty=False),
        )

    def to_json(self) -> dict[str, Any]:
        return _render(
            [
                ("attempt", self.attempt),
                ("attemptId", self.attempt_id),
                ("workerId", self.worker_id),
                ("traceparent", self.traceparent),
                ("heartbeatAt", _ts(self.heartbeat_at_ms)),
                ("progressPct", self.progress_pct),
                ("message", self.message),
            ]
        )


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    """200 body of ``heartbeat``; ``should_cancel`` is how a running worker learns of a cancel."""

    acknowledged: bool
    should_cancel: bool
    server_time_ms: int
    cancel_reason: str | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        r = _Reader("heartbeat response", obj)
        return cls(
            acknowledged=r.boolean("acknowledged"),
            should_cancel=r.boolean("shouldCancel"),
            server_time_ms=r.time_ms("serverTime", required=True),
            cancel_reason=r.text("cancelReason", required=False),
        )

    def to_json(self) -> dict[str, Any]:
        return _render(
            [
                ("acknowledged", self.acknowledged),
                ("shouldCancel", self.should_cancel),
                ("cancelReason", self.cancel_reason),
                ("serverTime", format_timestamp(self.server_time_ms)),
            ]
        )


@dataclass(frozen=True, slots=True)
class CompletedRequest:
    """``POST /tasks/{taskId}/completed``; ``partial_progress`` is any JSON value, kept as sent."""

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

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        r = _Reader("completed request", obj)
        attempt, attempt_id, worker_id = _attempt_fields(r)
        output = r.obj_or_none("output", "result")
        error = r.obj_or_none("error")
        metrics = r.obj_or_none("metrics")
        return cls(
            attempt=attempt,
            attempt_id=attempt_id,
            worker_id=worker_id,
            outcome=r.enum("outcome", OUTCOMES),
            traceparent=r.text("traceparent", required=False),
            completed_at_ms=r.time_ms("completedAt"),
            output=None if output is None else TaskOutput.from_json(output, _prefix="output."),
            error=None if error is None else TaskError.from_json(error, _prefix="error."),
            metrics=None if metrics is None else TaskMetrics.from_json(metrics, _prefix="metrics."),
            cancelled_during_phase=r.text("cancelledDuringPhase", required=False),
            partial_progress=r.raw("partialProgress"),
        )

    def to_json(self) -> dict[str, Any]:
        return _render(
            [
                ("attempt", self.attempt),
                ("attemptId", self.attempt_id),
                ("workerId", self.worker_id),
                ("outcome", self.outcome),
                ("traceparent", self.traceparent),
                ("completedAt", _ts(self.completed_at_ms)),
                ("output", None if self.output is None else self.output.to_json()),
                ("error", None if self.error is None else self.error.to_json()),
                ("metrics", None if self.metrics is None else self.metrics.to_json()),
                ("cancelledDuringPhase", self.cancelled_during_phase),
                ("partialProgress", self.partial_progress),
            ]
        )


@dataclass(frozen=True, slots=True)
class CompletedResponse:
    """200 body of ``completed``; ``final_state`` echoes the reported outcome (FAILED even if retrying)."""

    acknowledged: bool
    final_state: Outcome
    server_time_ms: int

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        r = _Reader("completed response", obj)
        return cls(
            r.boolean("acknowledged"), r.enum("finalState", OUTCOMES), r.time_ms("serverTime", required=True)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "acknowledged": self.acknowledged,
            "finalState": self.final_state,
            "serverTime": format_timestamp(self.server_time_ms),
        }


@dataclass(frozen=True, slots=True)
class CallbackError:
    """A callback's non-2xx body: ``error`` is the machine code (``attempt_mismatch``, …)."""

    error: str
    message: str
    state: str | None = None
    expected_attempt: int | None = None
    received_attempt: int | None = None
    expected_attempt_id: str | None = None
    received_attempt_id: str | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        r = _Reader("callback error", obj)
        return cls(
            error=r.text("error"),
            message=r.text("message", non_empty=False),
            state=r.text("state", required=False),
            expected_attempt=r.integer("expectedAttempt", **_NON_NEG, required=False),
            received_attempt=r.integer("receivedAttempt", **_NON_NEG, required=False),
            expected_attempt_id=r.text("expectedAttemptId", required=False, non_empty=False),
            received_attempt_id=r.text("receivedAttemptId", required=False, non_empty=False),
        )

    def to_json(self) -> dict[str, Any]:
        return _render(
            [
                ("error", self.error),
                ("message", self.message),
                ("state", self.state),
                ("expectedAttempt", self.expected_attempt),
                ("receivedAttempt", self.received_attempt),
                ("expectedAttemptId", self.expected_attempt_id),
                ("receivedAttemptId", self.received_attempt_id),
            ]
        )


__all__ = [
    "CATEGORY_DEFAULT_RETRYABLE",
    "OUTCOMES",
    "VISIBILITY_STATES",
    "CallbackError",
    "CompletedRequest",
    "CompletedResponse",
    "DispatchEnvelope",
    "ErrorCategory",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "Outcome",
    "StartedRequest",
    "StartedResponse",
    "TaskError",
    "TaskMetrics",
    "TaskOutput",
    "VisibilityState",
]
