"""Schedules as the API shows them (automation §4): list, show, enable/disable, ticks.

Reads come from the schedule projection, refreshed first so a read sees what was just written;
enable/disable append ``ScheduleStatusChanged`` with the next ``statusVersion`` (S2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from servo.core.errors import Conflict, InvalidInput, InvalidSchedule, NotFound
from servo.core.events import ScheduleStatusChanged, make_encoded_event
from servo.core.schedule_fold import ScheduleRow, ScheduleState, ScheduleTickRow
from servo.core.schedules import next_tick_after, parse_schedule, parse_tick_id
from servo.core.timefmt import format_timestamp
from servo.services.context import ServiceContext
from servo.services.ledger import append_made
from servo.services.runs import _decode_cursor as decode_cursor
from servo.services.runs import _encode_cursor as encode_cursor
from servo.services.runs import page_limit
from servo.services.schedule_projection import refresh_schedules

TICK_STATUSES = ("TRIGGERED", "SKIPPED", "FAILED")
DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def schedule_json(row: ScheduleRow, now_ms: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "scheduleId": row.schedule_id,
        "definition": row.definition_json(),
        "enabled": row.enabled,
        "status": row.status,
        "definitionVersion": row.definition_version,
        "statusVersion": row.status_version,
    }
    if row.last_scheduled_at is not None:
        out["lastScheduledFor"] = format_timestamp(row.last_scheduled_at)
    if row.status == "ACTIVE":
        try:
            nxt = next_tick_after(parse_schedule(row.definition_json()), now_ms)
        except InvalidSchedule:
            nxt = None  # an unevaluable stored definition: its ticks say why (FAILED)
        if nxt is not None:
            out["nextTickAt"] = format_timestamp(nxt * 1000)
    return out


def tick_json(tick: ScheduleTickRow, state: ScheduleState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tickId": tick.tick_id,
        "scheduleId": tick.schedule_id,
        "scheduledFor": format_timestamp(tick.scheduled_at),
        "evaluatedAt": format_timestamp(tick.evaluated_at),
        "status": tick.status,
        "definitionVersion": tick.definition_version,
    }
    if tick.reason is not None:
        out["reason"] = tick.reason
    if tick.request_id is not None:
        done = state.requests.get(tick.request_id)
        out |= {
            "requestId": tick.request_id,
            "runKey": tick.run_key,
            "selection": json.loads(tick.selection or "[]"),
            "requestStatus": done.outcome if done is not None else "PENDING",
        }
        if tick.partition_key is not None:
            out["partitionKey"] = tick.partition_key
        if done is not None and done.run_id is not None:
            out["runId"] = done.run_id
        if done is not None and done.message is not None:
            out["message"] = done.message
    return out


def _row(state: ScheduleState, schedule_id: str) -> ScheduleRow:
    row = state.schedules.get(schedule_id)
    if row is None or row.definition is None:
        raise NotFound(f"schedule '{schedule_id}' not found")
    return row


def list_schedules(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> dict[str, Any]:
    state = refresh_schedules(ctx, tenant_id, workspace_id)
    now = ctx.clock_ms()
    return {"schedules": [schedule_json(r, now) for r in state.visible_schedules()]}


def get_schedule(ctx: ServiceContext, tenant_id: str, workspace_id: str, schedule_id: str) -> dict[str, Any]:
    state = refresh_schedules(ctx, tenant_id, workspace_id)
    return schedule_json(_row(state, schedule_id), ctx.clock_ms())


def set_schedule_enabled(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, schedule_id: str, enabled: bool
) -> dict[str, Any]:
    """Enable or disable; ``changed`` is false (and nothing is written) when it already was (S2).

    Raises:
        NotFound: no such schedule.
        Conflict: the schedule was removed from the manifest (``DEFINITION_REMOVED``).
    """
    state = refresh_schedules(ctx, tenant_id, workspace_id)
    row = _row(state, schedule_id)
    if row.removed:
        raise Conflict(
            f"schedule '{schedule_id}' was removed by a deploy",
            details={"conflictType": "DEFINITION_REMOVED", "scheduleId": schedule_id},
        )
    if row.enabled == enabled:
        return {
            "scheduleId": schedule_id,
            "enabled": enabled,
            "statusVersion": row.status_version,
            "changed": False,
        }
    now = ctx.clock_ms()
    made = make_encoded_event(
        ScheduleStatusChanged(schedule_id, enabled, row.status_version + 1),
        event_id=ctx.ids.new(now),
        timestamp_ms=now,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
    )
    names = append_made(ctx, tenant_id, workspace_id, [made])
    after = _row(refresh_schedules(ctx, tenant_id, workspace_id, names), schedule_id)
    return {
        "scheduleId": schedule_id,
        "enabled": after.enabled,
        "statusVersion": after.status_version,
        "changed": after.status_event_id == made[0].event_id,
    }


def list_ticks(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, schedule_id: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """Ticks newest first, ``?status`` filtered, ``limit`` 1..200, paged by an opaque ``cursor`` (S13, §4).

    The cursor is the last tick shown (its instant and id): the next page starts below it, so ticks
    recorded meanwhile (always newer) never shift a page.
    """
    status = query.get("status")
    if status is not None and status not in TICK_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(TICK_STATUSES)}, not {status!r}")
    limit = page_limit(query, DEFAULT_LIMIT, MAX_LIMIT)
    after = decode_cursor(query["cursor"]) if query.get("cursor") else None
    state = refresh_schedules(ctx, tenant_id, workspace_id)
    _row(state, schedule_id)
    ticks = [
        t
        for t in state.ticks.values()
        if t.schedule_id == schedule_id
        and status in (None, t.status)
        and (after is None or (t.scheduled_at, t.tick_id) < after)
    ]
    ticks.sort(key=lambda t: (t.scheduled_at, t.tick_id), reverse=True)
    body: dict[str, Any] = {"ticks": [tick_json(t, state) for t in ticks[:limit]]}
    if len(ticks) > limit:
        last = ticks[limit - 1]
        body["nextCursor"] = encode_cursor(last.scheduled_at, last.tick_id)
    return body


def get_tick(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, schedule_id: str, tick: str
) -> dict[str, Any]:
    owner, _ = parse_tick_id(tick)
    state = refresh_schedules(ctx, tenant_id, workspace_id)
    _row(state, schedule_id)
    found = state.ticks.get(tick)
    if owner != schedule_id or found is None:
        raise NotFound(f"tick '{tick}' of schedule '{schedule_id}' not found")
    return tick_json(found, state)
