"""Schedules and sensors at deploy (automation §3, §5, S1–S5): validate ``schedules[]`` and ``sensors[]``
against the manifest's assets, then record only what changed.

The events are planned before the manifest record is stored and kept in it (``scheduleEvents``, sensor
definitions included: one list, so one replay path completes both), so a
deploy replayed with its Idempotency-Key re-appends exactly those objects (create-if-absent: no new
ledger object) and a crash between the record and the ledger is completed by the retry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from servo.core._sensor_events import SENSOR_EVENT_TYPES
from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import InvalidInput, InvalidSchedule
from servo.core.events import (
    Event,
    ScheduleDefinitionRemoved,
    ScheduleDefinitionUpserted,
    SensorDefinitionRemoved,
    SensorDefinitionUpserted,
    decode_event,
)
from servo.core.schedules import ScheduleSpec, parse_schedule
from servo.core.sensors import SensorSpec, parse_sensor
from servo.services.context import ServiceContext
from servo.services.ledger import append_made, stamp
from servo.services.schedule_projection import has_schedule_state, refresh_schedules
from servo.services.sensor_projection import has_sensor_state, refresh_sensors

RECORD_FIELD = "scheduleEvents"


def parse_manifest_schedules(body: Mapping[str, Any], assets: Mapping[str, Any]) -> list[ScheduleSpec]:
    """The manifest's schedules, each checked against ``assets`` (key -> AssetSpec).

    Raises:
        InvalidSchedule: the first bad entry; the message and ``details.field`` name it
            (``schedules[0].cron``); a duplicate id names ``schedules[i].id``.
    """
    found = parse_entries(body, "schedules", "schedule", parse_schedule, assets)
    return [found[k] for k in sorted(found)]


def parse_entries(
    body: Mapping[str, Any],
    name: str,
    kind: str,
    parse: Callable[[object], Any],
    assets: Mapping[str, Any],
) -> dict[str, Any]:
    """One ``schedules[]``/``sensors[]`` list parsed (``parse``) and checked against ``assets``, by id.

    Raises:
        InvalidSchedule: the first bad entry, named ``{name}[i].{field}``; a duplicate id ``{name}[i].id``.
    """
    raw = body.get(name)
    if raw is None:
        raw = []  # absent or null: a manifest without them
    if not isinstance(raw, list):
        raise InvalidSchedule(f"{name} must be a list", details={"field": name})
    dims = {key: list(spec.dimensions) for key, spec in assets.items()}
    found: dict[str, Any] = {}
    for i, entry in enumerate(raw):
        where = f"{name}[{i}]"
        try:
            spec = parse(entry)
            spec.check_targets(dims)
        except InvalidSchedule as exc:
            field = exc.details.get("field", "")
            raise InvalidSchedule(
                f"{where}: {exc.message}", details={**exc.details, "field": f"{where}.{field}".rstrip(".")}
            ) from None
        sid = spec.schedule_id if isinstance(spec, ScheduleSpec) else spec.sensor_id
        if sid in found:
            raise InvalidSchedule(
                f"{where}.id: duplicate {kind} id {sid!r}", details={"field": f"{where}.id"}
            )
        found[sid] = spec
    return found


def plan_schedule_events(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, manifest_id: str, specs: Sequence[ScheduleSpec]
) -> list[tuple[Event, bytes]]:
    """Upserts for new, changed or re-added definitions and removals for dropped ones; none if equal (S1)."""
    if not specs and not has_schedule_state(ctx, tenant_id, workspace_id):
        return []  # no schedule now or ever: nothing to add or remove
    state = refresh_schedules(ctx, tenant_id, workspace_id)
    current = {
        r.schedule_id: Deployed(r.definition_hash, r.definition_version, r.removed)
        for r in state.visible_schedules()
    }
    wanted = [Wanted(s.schedule_id, s.to_manifest(), s.definition_hash) for s in specs]
    data = plan_definitions(
        manifest_id, wanted, current, ScheduleDefinitionUpserted, ScheduleDefinitionRemoved
    )
    return _stamped(ctx, tenant_id, workspace_id, data)


@dataclass(frozen=True, slots=True)
class Deployed:
    """A definition as the projection holds it."""

    definition_hash: str | None
    definition_version: int
    removed: bool


@dataclass(frozen=True, slots=True)
class Wanted:
    """A definition as the manifest holds it."""

    id: str
    definition: dict[str, Any]
    definition_hash: str


def plan_definitions(
    manifest_id: str,
    wanted: Sequence[Wanted],
    current: Mapping[str, Deployed],
    upserted: Callable[[str, str, dict[str, Any], str, int], Any],
    removed: Callable[[str, str], Any],
) -> list[Any]:
    """Upserts where the hash changed or the definition was removed, removals for ids gone (S1, S5);
    ``definitionVersion`` is +1 per hash change."""
    data: list[Any] = []
    for want in wanted:
        row = current.get(want.id)
        changed = row is None or row.definition_hash != want.definition_hash
        if not changed and row is not None and not row.removed:
            continue
        version = (row.definition_version if row is not None else 0) + (1 if changed else 0)
        data.append(upserted(want.id, manifest_id, want.definition, want.definition_hash, max(version, 1)))
    ids = {w.id for w in wanted}
    data.extend(
        removed(sid, manifest_id) for sid in sorted(current) if sid not in ids and not current[sid].removed
    )
    return data


def _stamped(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, data: Sequence[Any]
) -> list[tuple[Event, bytes]]:
    now = ctx.clock_ms()
    return [stamp(ctx, tenant_id, workspace_id, d, now) for d in data]


def plan_sensor_events(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, manifest_id: str, specs: Sequence[SensorSpec]
) -> list[tuple[Event, bytes]]:
    """As for schedules: SensorDefinitionUpserted where the canonical hash changed, -Removed for ids gone."""
    if not specs and not has_sensor_state(ctx, tenant_id, workspace_id):
        return []
    tables = refresh_sensors(ctx, tenant_id, workspace_id)
    current = {}
    for log in tables.logs():
        if log.definition is not None:
            definition = log.definition_json() or {}
            current[log.sensor_id] = Deployed(
                parse_sensor(definition).definition_hash, log.definition_version, log.removed
            )
    wanted = [Wanted(s.sensor_id, s.to_manifest(), s.definition_hash) for s in specs]
    data = plan_definitions(manifest_id, wanted, current, SensorDefinitionUpserted, SensorDefinitionRemoved)
    return _stamped(ctx, tenant_id, workspace_id, data)


def parse_manifest_sensors(body: Mapping[str, Any], assets: Mapping[str, Any]) -> list[SensorSpec]:
    """The manifest's sensors, each checked against ``assets`` (targets, monitored assets).

    Raises:
        InvalidSchedule: (an ``InvalidSensor``) the first bad entry, ``details.field`` ``sensors[i].…``.
    """
    found = parse_entries(body, "sensors", "sensor", parse_sensor, assets)
    return [found[k] for k in sorted(found)]


def schedule_record(events: Sequence[tuple[Event, bytes]]) -> dict[str, Any]:
    """The manifest record's field that keeps the planned events (empty when there are none)."""
    return {RECORD_FIELD: [loads_strict(body) for _, body in events]} if events else {}


def append_schedule_events(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, events: Sequence[tuple[Event, bytes]]
) -> None:
    """Append the planned schedule and sensor events and refresh the projections they belong to."""
    if events:
        names = append_made(ctx, tenant_id, workspace_id, list(events))
        if any(not isinstance(e.data, SENSOR_EVENT_TYPES) for e, _ in events):
            refresh_schedules(ctx, tenant_id, workspace_id, names)
        if any(isinstance(e.data, SENSOR_EVENT_TYPES) for e, _ in events):
            refresh_sensors(ctx, tenant_id, workspace_id, names)


def complete_replayed_deploy(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, manifest_id: str
) -> None:
    """Re-append a replayed deploy's planned events: no-ops when they are there, the rest after a crash."""
    obj = ctx.workspace_store(tenant_id, workspace_id).get(f"manifests/{manifest_id}.json")
    if obj is None:
        raise InvalidInput(f"manifest {manifest_id} of this Idempotency-Key is missing")
    planned = loads_strict(obj.data).get(RECORD_FIELD) or []
    kept = [canonical_bytes(e) for e in planned]
    append_schedule_events(ctx, tenant_id, workspace_id, [(decode_event(b), b) for b in kept])
