"""Schedules (automation §3, §5, §6.1): the deployed definition, its canonical hash, and the ticks a sweep
owes at a given time with what each one requests.

Pure: the clock is an argument (epoch milliseconds, like every Servo clock); tick instants are whole
epoch seconds. Ids derive from inputs, so a repeated or concurrent sweep computes the same ticks, keys
and requests.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from servo.core.canonical_json import canonical_bytes
from servo.core.cron import CronExpression, load_timezone, parse_cron
from servo.core.errors import InvalidAssetKey, InvalidInput, InvalidSchedule
from servo.core.fingerprints import request_fingerprint
from servo.core.keys import canonical_selection
from servo.core.schedule_partitions import (
    PartitionRule,
    check_partition_rule,
    normalize_partition_rule,
    tick_partition_key,
)
from servo.core.timefmt import format_timestamp

__all__ = [
    "CATCHUP_WINDOW_MINUTES",
    "DEFAULT_CATCHUP_WINDOW_MINUTES",
    "DEFAULT_MAX_CATCHUP_TICKS",
    "MAX_CATCHUP_TICKS",
    "SCHEDULE_ID_RE",
    "ScheduleSpec",
    "TickDecision",
    "TickRunRequest",
    "decide_tick",
    "due_ticks",
    "next_tick_after",
    "parse_schedule",
    "parse_tick_id",
    "schedule_run_key",
    "tick_id",
    "tick_request_id",
]

SCHEDULE_ID_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_DECIMAL_RE = re.compile(r"0|[1-9][0-9]{0,15}")
CATCHUP_WINDOW_MINUTES = (1, 10_080)
MAX_CATCHUP_TICKS = (1, 1000)
DEFAULT_CATCHUP_WINDOW_MINUTES = 60
DEFAULT_MAX_CATCHUP_TICKS = 5
RESERVED_LABEL_PREFIX = "servo."
PAUSED_REASON = "paused"

TickStatus = Literal["TRIGGERED", "SKIPPED", "FAILED"]


def field_error(
    field_name: str, message: str, *, error: type[InvalidSchedule] = InvalidSchedule, **details: Any
) -> InvalidSchedule:
    """A bad automation definition (schedule or sensor) naming its field in ``details["field"]``."""
    return error(f"{field_name}: {message}", details={"field": field_name, **details})


def check_definition_id(value: object, kind: str, error: type[InvalidSchedule] = InvalidSchedule) -> str:
    """Raise ``error`` unless ``value`` matches ``[a-z][a-z0-9_]{0,63}`` (schedule and sensor ids)."""
    if not isinstance(value, str) or not SCHEDULE_ID_RE.fullmatch(value):
        message = f"{kind} id {value!r} must match [a-z][a-z0-9_]{{0,63}}"
        raise field_error("id", message, error=error, id=value)
    return value


def check_schedule_id(value: object) -> str:
    """Raise InvalidSchedule unless ``value`` matches ``[a-z][a-z0-9_]{0,63}``."""
    return check_definition_id(value, "schedule")


def bounded_int(
    raw: Mapping[str, Any],
    name: str,
    default: int,
    bounds: tuple[int, int],
    error: type[InvalidSchedule] = InvalidSchedule,
) -> int:
    """The integer field ``name`` (``default`` when absent), refused outside ``bounds`` (inclusive)."""
    value = raw.get(name, default)
    lo, hi = bounds
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise field_error(name, f"must be an integer in {lo}..{hi}, not {value!r}", error=error)
    return value


def _target(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise field_error("target", f"must be a non-empty list of asset keys ('ns.name'), not {value!r}")
    try:
        return tuple(canonical_selection(value))
    except InvalidAssetKey as exc:
        raise field_error("target", exc.message) from None


def reserved_labels(labels: Mapping[str, str]) -> list[str]:
    """The keys under the ``servo.`` prefix, which only Servo may set (sorted, for the error message)."""
    return sorted(k for k in labels if k.startswith(RESERVED_LABEL_PREFIX))


def canonical_labels(labels: Mapping[str, str]) -> Mapping[str, str]:
    """``labels`` in key byte order: the one order manifests, hashes and run-request fingerprints use."""
    return MappingProxyType({k: labels[k] for k in sorted(labels, key=lambda k: k.encode("utf-8"))})


def _labels(value: object) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise field_error("labels", f"must map non-empty strings to strings, not {value!r}")
    reserved = reserved_labels(value)
    if reserved:
        raise field_error("labels", f"{', '.join(reserved)}: the servo. prefix is reserved", labels=reserved)
    return canonical_labels(value)


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A validated schedule definition; ``to_manifest()`` is its one canonical (camelCase) form."""

    schedule_id: str
    cron: CronExpression
    timezone: str
    target: tuple[str, ...]
    partition: PartitionRule | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    catchup_window_minutes: int = DEFAULT_CATCHUP_WINDOW_MINUTES
    max_catchup_ticks: int = DEFAULT_MAX_CATCHUP_TICKS
    default_enabled: bool = False

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.schedule_id,
            "cron": self.cron.expression,
            "timezone": self.timezone,
            "target": list(self.target),
            "labels": dict(self.labels),
            "catchupWindowMinutes": self.catchup_window_minutes,
            "maxCatchupTicks": self.max_catchup_ticks,
            "defaultEnabled": self.default_enabled,
        }
        if self.partition is not None:
            out["partition"] = self.partition if isinstance(self.partition, str) else dict(self.partition)
        return out

    @property
    def definition_hash(self) -> str:
        """``sha256:`` + hex of the canonical JSON of the manifest form: a redeploy upserts iff it changed."""
        return "sha256:" + hashlib.sha256(canonical_bytes(self.to_manifest())).hexdigest()

    def check_targets(self, dimensions_of: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Deploy-time checks against the manifest's assets (``key -> partition dimensions``).

        Raises:
            InvalidSchedule: an unknown target, targets with different dimension sets, or a partition
                rule that does not fit them.
        """
        unknown = [key for key in self.target if key not in dimensions_of]
        if unknown:
            raise field_error("target", f"unknown asset(s) {', '.join(unknown)}", unknown=unknown)
        check_partition_rule(self.partition, shared_dimensions(self.target, dimensions_of))


def shared_dimensions(
    target: Sequence[str], dimensions_of: Mapping[str, Sequence[Mapping[str, Any]]]
) -> Sequence[Mapping[str, Any]]:
    first = dimensions_of[target[0]]
    shape = sorted(canonical_bytes(d) for d in first)
    for key in target[1:]:
        if sorted(canonical_bytes(d) for d in dimensions_of[key]) != shape:
            raise field_error(
                "target",
                f"{target[0]} and {key} are partitioned differently; a schedule's targets share one "
                "dimension set",
            )
    return first


def parse_schedule(raw: object) -> ScheduleSpec:
    """Validate one manifest ``schedules[]`` entry (camelCase) into a spec.

    Raises:
        InvalidSchedule: the first bad field, named in the message and ``details["field"]``.
    """
    if not isinstance(raw, Mapping):
        raise InvalidSchedule(f"a schedule must be an object, not {raw!r}", details={"field": "schedule"})
    known = {
        "id",
        "cron",
        "timezone",
        "target",
        "partition",
        "labels",
        "catchupWindowMinutes",
        "maxCatchupTicks",
        "defaultEnabled",
    }
    extra = sorted(str(k) for k in raw if k not in known)
    if extra:
        raise field_error(extra[0], f"unknown schedule field (known: {', '.join(sorted(known))})")
    schedule_id = check_schedule_id(raw.get("id"))
    timezone = raw.get("timezone", "UTC")
    load_timezone(timezone)
    default_enabled = raw.get("defaultEnabled", False)
    if not isinstance(default_enabled, bool):
        raise field_error("defaultEnabled", f"must be true or false, not {default_enabled!r}")
    return ScheduleSpec(
        schedule_id=schedule_id,
        cron=parse_cron(raw.get("cron")),
        timezone=str(timezone),
        target=_target(raw.get("target")),
        partition=normalize_partition_rule(raw.get("partition")),
        labels=_labels(raw.get("labels")),
        catchup_window_minutes=bounded_int(
            raw, "catchupWindowMinutes", DEFAULT_CATCHUP_WINDOW_MINUTES, CATCHUP_WINDOW_MINUTES
        ),
        max_catchup_ticks=bounded_int(raw, "maxCatchupTicks", DEFAULT_MAX_CATCHUP_TICKS, MAX_CATCHUP_TICKS),
        default_enabled=default_enabled,
    )


# ---------------------------------------------------------------------------------------------- ticks


def tick_id(schedule_id: str, epoch_s: int) -> str:
    """``{schedule_id}:{epoch}`` (UTC seconds)."""
    return f"{check_schedule_id(schedule_id)}:{_epoch(epoch_s)}"


def parse_tick_id(text: object) -> tuple[str, int]:
    """``(schedule_id, epoch)`` of a tick id (a REST path segment).

    Raises:
        InvalidInput: not ``{schedule_id}:{epoch}`` with a valid id and a canonical decimal epoch.
    """
    schedule_id, found, epoch = text.partition(":") if isinstance(text, str) else ("", "", "")
    if not found or not SCHEDULE_ID_RE.fullmatch(schedule_id) or not _DECIMAL_RE.fullmatch(epoch):
        raise InvalidInput(f"invalid tick id {text!r}: expected {{schedule_id}}:{{epoch seconds}}")
    return schedule_id, int(epoch)


def schedule_run_key(schedule_id: str, epoch_s: int) -> str:
    """``sched:{schedule_id}:{epoch}``: a replayed or concurrent sweep reserves the same key."""
    return f"sched:{tick_id(schedule_id, epoch_s)}"


def tick_request_id(schedule_id: str, epoch_s: int) -> str:
    """``tick:{tick_id}``."""
    return f"tick:{tick_id(schedule_id, epoch_s)}"


def _epoch(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"tick epoch {value!r} must be an int of seconds >= 0")
    return value


def due_ticks(
    spec: ScheduleSpec, *, last_scheduled_for_ms: int | None, first_seen_at_ms: int, now_ms: int
) -> list[int]:
    """The tick instants (epoch seconds) a sweep at ``now_ms`` owes, oldest first, at most maxCatchupTicks.

    Those ``t`` with ``max(last_scheduled_for, first_seen_at, now - window) < t <= now`` (§6.1); the rest
    wait inside the window for the next sweep.

    Raises:
        InvalidSchedule: the stored timezone is unknown to this runtime (the sweep records one FAILED
            tick per definition version).
    """
    floor_ms = max(first_seen_at_ms, now_ms - spec.catchup_window_minutes * 60_000)
    if last_scheduled_for_ms is not None:
        floor_ms = max(floor_ms, last_scheduled_for_ms)
    # Ticks are whole seconds, so t > floor_ms/1000 and t <= now_ms/1000 hold exactly on the floors.
    return spec.cron.fire_times(
        load_timezone(spec.timezone), floor_ms // 1000, now_ms // 1000, spec.max_catchup_ticks
    )


def next_tick_after(spec: ScheduleSpec, now_ms: int) -> int | None:
    """The first tick instant (epoch seconds) after ``now_ms``: the schedule's ``nextTickAt``.

    Raises:
        InvalidSchedule: the stored timezone is unknown to this runtime.
    """
    return spec.cron.next_fire_after(load_timezone(spec.timezone), now_ms // 1000)


@dataclass(frozen=True, slots=True)
class TickRunRequest:
    """The run request a TRIGGERED tick carries (§2), written atomically with ScheduleTicked."""

    request_id: str
    run_key: str
    request_fingerprint: str
    selection: tuple[str, ...]
    partition_key: str | None
    labels: Mapping[str, str]
    source: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TickDecision:
    """One tick's outcome: TRIGGERED with a request, SKIPPED ``paused``, or FAILED with a reason."""

    schedule_id: str
    epoch_s: int
    status: TickStatus
    reason: str | None = None
    run_request: TickRunRequest | None = None

    @property
    def tick_id(self) -> str:
        return tick_id(self.schedule_id, self.epoch_s)

    @property
    def scheduled_for(self) -> str:
        return format_timestamp(self.epoch_s * 1000)


def decide_tick(
    spec: ScheduleSpec, dimensions: Sequence[Mapping[str, Any]], epoch_s: int, *, enabled: bool
) -> TickDecision:
    """What the tick at ``epoch_s`` records, given the targets' shared dimensions and the schedule status.

    Disabled ticks are SKIPPED without a request; a tick whose partition cannot be built (before the
    dimension's start, a rule the deployed dimensions no longer fit) is FAILED with the reason (S10).
    """
    if not enabled:
        return TickDecision(spec.schedule_id, epoch_s, "SKIPPED", PAUSED_REASON)
    try:
        partition_key = tick_partition_key(spec.partition, dimensions, epoch_s)
    except InvalidSchedule as exc:
        return TickDecision(spec.schedule_id, epoch_s, "FAILED", exc.message)
    labels = MappingProxyType(dict(spec.labels))
    request = TickRunRequest(
        request_id=tick_request_id(spec.schedule_id, epoch_s),
        run_key=schedule_run_key(spec.schedule_id, epoch_s),
        request_fingerprint=request_fingerprint(spec.target, False, False, partition_key, labels),
        selection=spec.target,
        partition_key=partition_key,
        labels=labels,
        source=MappingProxyType(
            {"type": "schedule", "id": spec.schedule_id, "ref": tick_id(spec.schedule_id, epoch_s)}
        ),
    )
    return TickDecision(spec.schedule_id, epoch_s, "TRIGGERED", run_request=request)
