"""The ledger event model: the envelope, its byte-exact codec and the ledger object names.

Wire shape: contracts §6 (snake_case envelope, ``data`` tagged with ``type``, canonical JSON, optional
fields omitted when None); Servo's object path is ``ledger/orchestration/{event_id}.json`` (design §5).
Timestamps are RFC 3339 strings on the wire and epoch milliseconds in Python. The worker structs
``output``/``error``/``metrics`` are kept as their camelCase JSON objects; treat them as read-only.

Codec log (rename nothing stored without a line here):
- v1: contracts §6 types; TaskFinished also reads as TaskCompletionRecorded (wire name kept);
  Servo additions RunTriggered.timeout_seconds/.traceparent, TaskFinished.error_category,
  TaskDef.timeout_seconds and the RunTimedOut event.

The payload types (one frozen dataclass per ``data.type``) live in ``_event_types`` and their field codec
in ``_event_fields``; this module re-exports them, so ``servo.core.events`` stays the one import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec

from servo.core._automation_events import (
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
    struct_from_json,
    struct_to_json,
)
from servo.core._event_types import (
    DATA_TYPES,
    DispatchEnqueued,
    DispatchRequested,
    EventData,
    KnownData,
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
    UnknownEvent,
    event_run_id,
    snake_case,
)
from servo.core._sensor_events import (
    SensorDefinitionRemoved,
    SensorDefinitionUpserted,
    SensorEvaluated,
    SensorEvaluationRequested,
    SensorMessageReceived,
    SensorStatusChanged,
)
from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import CanonicalJsonError, InvalidEvent, InvalidId, InvalidInput
from servo.core.ids import validate_ulid
from servo.core.timefmt import format_timestamp, parse_timestamp

__all__ = [
    "DATA_TYPES",
    "ERROR_CATEGORIES",
    "OUTCOMES",
    "TIMER_TYPES",
    "TRIGGER_TYPES",
    "VISIBILITY_STATES",
    "BackfillChunkPlanned",
    "BackfillCreated",
    "BackfillStateChanged",
    "DispatchEnqueued",
    "DispatchRequested",
    "EncodedEvent",
    "Event",
    "EventData",
    "KnownData",
    "OutputVisibility",
    "PlanCreated",
    "RunCancelRequested",
    "RunRequestResolved",
    "RunTimedOut",
    "RunTriggered",
    "ScheduleDefinitionRemoved",
    "ScheduleDefinitionUpserted",
    "ScheduleStatusChanged",
    "ScheduleTicked",
    "SensorDefinitionRemoved",
    "SensorDefinitionUpserted",
    "SensorEvaluated",
    "SensorEvaluationRequested",
    "SensorMessageReceived",
    "SensorStatusChanged",
    "TaskFinished",
    "TaskHeartbeat",
    "TaskOutputVisibilityChanged",
    "TaskStarted",
    "TimerEnqueued",
    "TimerFired",
    "TimerRequested",
    "UnknownEvent",
    "as_event",
    "data_from_json",
    "data_to_json",
    "decode_event",
    "encode_event",
    "event_body",
    "event_id_from_object_name",
    "event_run_id",
    "ledger_object_name",
    "make_encoded_event",
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


def make_encoded_event(
    data: EventData,
    *,
    event_id: str,
    timestamp_ms: int,
    tenant_id: str,
    workspace_id: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    event_type: str | None = None,
) -> tuple[Event, bytes]:
    """Build an event and the bytes it is written as; the idempotency key is computed from the data
    (contracts §6), never typed. A writer hands the bytes on (``append_events(encoded=...)``) so the
    event is not encoded a second time.

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
    return event, encode_event(event)


_P = ParamSpec("_P")


def _event_only(make: Callable[_P, tuple[Event, bytes]]) -> Callable[_P, Event]:
    def made(*args: _P.args, **kwargs: _P.kwargs) -> Event:
        return make(*args, **kwargs)[0]

    made.__doc__ = "``make_encoded_event`` without the bytes."
    return made


make_event = _event_only(make_encoded_event)


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
        "data": data_to_json(event.data, snake_case(event.event_type)),
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


def data_to_json(data: EventData, type_name: str) -> dict[str, Any]:
    """The ``data`` object of an event, tagged with ``type_name``."""
    if isinstance(data, UnknownEvent):
        return dict(data.raw)
    return {**struct_to_json(data), "type": type_name}


def data_from_json(cls: type[KnownData], raw: Mapping[str, Any]) -> KnownData:
    """Decode a ``data`` object into ``cls``, strictly (unknown or mistyped fields are errors)."""
    result: KnownData = struct_from_json(cls, raw)
    return result


def _decode_data(raw: dict[str, Any], event_type: str) -> EventData:
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise InvalidEvent("data.type must be a string", details={"field": "data.type"})
    cls = DATA_TYPES.get(kind)
    if cls is None:
        return UnknownEvent(type=kind, raw=raw)
    if kind != snake_case(event_type) or not (cls.__name__ == event_type or cls is TaskFinished):
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
    # The decoded event, once known (given by whoever holds it, or kept by the first decode): a run
    # re-folded for a late event then decodes none of its events again. Not part of the identity.
    event: Event | None = field(default=None, compare=False, repr=False)

    def decode(self) -> Event:
        if self.event is None:
            object.__setattr__(self, "event", decode_event(self.body.encode("utf-8")))
        assert self.event is not None
        return self.event


def as_event(value: Event | EncodedEvent) -> Event:
    return value.decode() if isinstance(value, EncodedEvent) else value


def event_body(value: Event | EncodedEvent) -> str:
    """The canonical JSON of an event, without re-encoding one that was never decoded."""
    return value.body if isinstance(value, EncodedEvent) else encode_event(value).decode("utf-8")
