"""Schedules at deploy (automation §3, §5, S1–S5): validate ``schedules[]`` against the manifest's assets,
then record only what changed.

The events are planned before the manifest record is stored and kept in it (``scheduleEvents``), so a
deploy replayed with its Idempotency-Key re-appends exactly those objects (create-if-absent: no new
ledger object) and a crash between the record and the ledger is completed by the retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import InvalidInput, InvalidSchedule
from servo.core.events import (
    Event,
    ScheduleDefinitionRemoved,
    ScheduleDefinitionUpserted,
    decode_event,
    encode_event,
    make_event,
)
from servo.core.schedules import ScheduleSpec, parse_schedule
from servo.services.context import ServiceContext
from servo.services.ledger import append_events
from servo.services.schedule_projection import has_schedule_state, refresh_schedules

RECORD_FIELD = "scheduleEvents"


def parse_manifest_schedules(body: Mapping[str, Any], assets: Mapping[str, Any]) -> list[ScheduleSpec]:
    """The manifest's schedules, each checked against ``assets`` (key -> AssetSpec).

    Raises:
        InvalidSchedule: the first bad entry; the message and ``details.field`` name it
            (``schedules[0].cron``); a duplicate id names ``schedules[i].id``.
    """
    raw = body.get("schedules")
    if raw is None:
        raw = []  # absent or null: a manifest without schedules
    if not isinstance(raw, list):
        raise InvalidSchedule("schedules must be a list", details={"field": "schedules"})
    dims = {key: list(spec.dimensions) for key, spec in assets.items()}
    found: dict[str, ScheduleSpec] = {}
    for i, entry in enumerate(raw):
        where = f"schedules[{i}]"
        try:
            spec = parse_schedule(entry)
            spec.check_targets(dims)
        except InvalidSchedule as exc:
            name = exc.details.get("field", "")
            raise InvalidSchedule(
                f"{where}: {exc.message}", details={**exc.details, "field": f"{where}.{name}".rstrip(".")}
            ) from None
        if spec.schedule_id in found:
            raise InvalidSchedule(
                f"{where}.id: duplicate schedule id {spec.schedule_id!r}", details={"field": f"{where}.id"}
            )
        found[spec.schedule_id] = spec
    return [found[k] for k in sorted(found)]


def plan_schedule_events(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, manifest_id: str, specs: Sequence[ScheduleSpec]
) -> list[Event]:
    """Upserts for new, changed or re-added definitions and removals for dropped ones; none if equal (S1)."""
    if not specs and not has_schedule_state(ctx, tenant_id, workspace_id):
        return []  # no schedule now or ever: nothing to add or remove
    state = refresh_schedules(ctx, tenant_id, workspace_id)
    now = ctx.clock_ms()
    data: list[Any] = []
    wanted = {spec.schedule_id for spec in specs}
    for spec in specs:
        row = state.schedules.get(spec.schedule_id)
        changed = row is None or row.definition_hash != spec.definition_hash
        if not changed and row is not None and row.definition is not None and not row.removed:
            continue
        version = (row.definition_version if row is not None else 0) + (1 if changed else 0)
        data.append(
            ScheduleDefinitionUpserted(
                spec.schedule_id, manifest_id, spec.to_manifest(), spec.definition_hash, max(version, 1)
            )
        )
    for row in state.visible_schedules():
        if row.schedule_id not in wanted and not row.removed:
            data.append(ScheduleDefinitionRemoved(row.schedule_id, manifest_id))
    return [
        make_event(
            d, event_id=ctx.ids.new(now), timestamp_ms=now, tenant_id=tenant_id, workspace_id=workspace_id
        )
        for d in data
    ]


def schedule_record(events: Sequence[Event]) -> dict[str, Any]:
    """The manifest record's field that keeps the planned events (empty when there are none)."""
    return {RECORD_FIELD: [loads_strict(encode_event(e)) for e in events]} if events else {}


def append_schedule_events(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, events: Sequence[Event]
) -> None:
    if events:
        names = append_events(ctx, tenant_id, workspace_id, events)
        refresh_schedules(ctx, tenant_id, workspace_id, names)


def complete_replayed_deploy(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, manifest_id: str
) -> None:
    """Re-append a replayed deploy's planned events: no-ops when they are there, the rest after a crash."""
    obj = ctx.workspace_store(tenant_id, workspace_id).get(f"manifests/{manifest_id}.json")
    if obj is None:
        raise InvalidInput(f"manifest {manifest_id} of this Idempotency-Key is missing")
    planned = loads_strict(obj.data).get(RECORD_FIELD) or []
    append_schedule_events(ctx, tenant_id, workspace_id, [decode_event(canonical_bytes(e)) for e in planned])
