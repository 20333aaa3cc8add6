"""The field layer of event payloads: value sets, field errors and the per-field JSON codec.

Every payload dataclass carries a ``KINDS`` table naming each field's kind; the one generic codec here
turns a dataclass into its ``data`` object and back, strictly, so no type hand-writes its own JSON.
``OutputVisibility`` lives here because it is a field value (kind ``vis``), not an event of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from servo.core.errors import InvalidEvent, InvalidInput
from servo.core.taskdef import TaskDef
from servo.core.timefmt import format_timestamp, parse_timestamp

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
TRIGGER_TYPES = frozenset({"manual", "cron", "materialization", "webhook", "sensor", "rerun", "backfill"})


def bad_field(field: str, message: str) -> InvalidEvent:
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
            raise bad_field(
                "output_visibility.visibility_state",
                f"{self.visibility_state!r} not in {sorted(VISIBILITY_STATES)}",
            )


def _encode_value(kind: str, value: Any) -> Any:
    if kind == "ts":
        return format_timestamp(value)
    if kind in ("strs", "objs"):
        return list(value)
    if kind == "tasks":
        return [_taskdef_to_json(t) for t in value]
    if kind == "vis":
        return struct_to_json(value)
    return value


def struct_to_json(data: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(data):
        value = getattr(data, f.name)
        if value is not None:
            out[f.name] = _encode_value(data.KINDS[f.name], value)
    return out


def _decode_value(kind: str, name: str, value: Any) -> Any:
    if kind in ("id", "str"):
        if not isinstance(value, str) or (kind == "id" and not value):
            raise bad_field(name, f"must be a {'non-empty ' if kind == 'id' else ''}string, got {value!r}")
        return value
    if kind in ("int", "attempt", "pct"):
        low = 1 if kind == "attempt" else 0
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (kind == "pct" and value > 100)
        ):
            raise bad_field(
                name,
                f"must be an integer >= {low}{' and <= 100' if kind == 'pct' else ''}, got {value!r}",
            )
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad_field(name, f"must be a bool, got {value!r}")
        return value
    if kind == "ts":
        if not isinstance(value, str):
            raise bad_field(name, f"must be an RFC 3339 string, got {value!r}")
        try:
            return parse_timestamp(value)
        except InvalidInput as exc:
            raise bad_field(name, str(exc)) from exc
    if kind in ("obj", "labels"):
        if not isinstance(value, dict):
            raise bad_field(name, "must be an object")
        if kind == "labels" and not all(isinstance(v, str) for v in value.values()):
            raise bad_field(name, "label values must be strings")
        return value
    if kind == "strs":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad_field(name, "must be a list of strings")
        return tuple(value)
    if kind == "objs":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise bad_field(name, "must be a list of objects")
        return tuple(value)
    if kind == "tasks":
        if not isinstance(value, list):
            raise bad_field(name, "must be a list of task definitions")
        return tuple(_taskdef_from_json(v) for v in value)
    if kind == "vis":
        if not isinstance(value, dict):
            raise bad_field(name, "must be an object")
        return struct_from_json(OutputVisibility, value, prefix=f"{name}.")
    raise AssertionError(f"unknown field kind {kind}")  # pragma: no cover - a typo in a KINDS table


def struct_from_json(cls: Any, raw: Mapping[str, Any], *, prefix: str = "") -> Any:
    known = {f.name for f in fields(cls)}
    extra = sorted(set(raw) - known - ({"type"} if not prefix else set()))
    if extra:
        raise bad_field(prefix + extra[0], "unknown field")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in raw:
            kwargs[f.name] = _decode_value(cls.KINDS[f.name], prefix + f.name, raw[f.name])
        elif f.default is f.default_factory:  # both MISSING: a required field
            raise bad_field(prefix + f.name, "missing")
    return cls(**kwargs)


_TASKDEF_KINDS: Mapping[str, str] = {
    "key": "id", "depends_on": "strs", "asset_key": "str", "partition_key": "str", "max_attempts": "attempt",
    "heartbeat_timeout_sec": "int", "requires_visible_output": "bool", "timeout_seconds": "int",
    "code_version": "str",
}  # fmt: skip
_TASKDEF_OPTIONAL = frozenset({"asset_key", "partition_key", "timeout_seconds", "code_version"})


def _taskdef_to_json(t: TaskDef) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in _TASKDEF_KINDS.items():
        value = getattr(t, name)
        if value is not None or name not in _TASKDEF_OPTIONAL:
            out[name] = _encode_value(kind, value)
    return out


def _taskdef_from_json(raw: Any) -> TaskDef:
    if not isinstance(raw, dict):
        raise bad_field("tasks", "each task must be an object")
    extra = sorted(set(raw) - set(_TASKDEF_KINDS))
    if extra:
        raise bad_field(f"tasks.{extra[0]}", "unknown field")
    if "key" not in raw:
        raise bad_field("tasks.key", "missing")
    # Defaults apply to fields the reference may omit (serde defaults); the writer always writes them.
    kwargs = {n: _decode_value(k, f"tasks.{n}", raw[n]) for n, k in _TASKDEF_KINDS.items() if n in raw}
    return TaskDef(**kwargs)


# The wire form of a TaskDef, for records that carry planned tasks outside an event (run_creation).
taskdef_to_json = _taskdef_to_json
taskdef_from_json = _taskdef_from_json
