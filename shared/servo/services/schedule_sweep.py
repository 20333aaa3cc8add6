"""The schedules step of the timers sweep (automation §6.1): record each due tick once, then submit
the run requests of TRIGGERED ticks.

Ticks come from ``due_ticks`` over the projection's ``last_scheduled_for`` and ``first_seen_at``, and
their ids, keys and requests derive from the schedule and the instant alone, so a duplicated, replayed
or concurrent sweep writes the same ``sched_tick:{tick_id}`` and the fold keeps one tick (S12).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from servo.core.errors import InvalidSchedule
from servo.core.events import ScheduleTicked
from servo.core.ids import ulid_time_ms
from servo.core.schedule_fold import ScheduleRow
from servo.core.schedules import TickDecision, decide_tick, due_ticks, parse_schedule, tick_id
from servo.services.context import ServiceContext
from servo.services.ledger import append_made, stamp
from servo.services.manifests import load_current_manifest
from servo.services.run_requests import submit_pending_ticks
from servo.services.schedule_projection import has_schedule_state, refresh_schedules

logger = logging.getLogger("servo.schedules")

# §6.1 "nothing if still over 30 s behind". The sweep folds the ledger into the schedule projection
# itself, just before deciding, so the projection is behind by the time between that read and the
# decision: an enable/disable or tick written meanwhile is unseen. Past this bound the sweep decides
# nothing; the next one (a minute later, on a fresh read) owes the same ticks, so none is lost.
MAX_PROJECTION_LAG_MS = 30_000


def _request_json(decision: TickDecision) -> dict[str, Any] | None:
    request = decision.run_request
    if request is None:
        return None
    out: dict[str, Any] = {
        "request_id": request.request_id,
        "run_key": request.run_key,
        "request_fingerprint": request.request_fingerprint,
        "selection": list(request.selection),
        "labels": dict(request.labels),
        "source": dict(request.source),
    }
    if request.partition_key is not None:
        out["partition_key"] = request.partition_key
    return out


def _ticked(row: ScheduleRow, epoch_s: int, status: str, reason: str | None, request: Any) -> ScheduleTicked:
    return ScheduleTicked(
        tick_id=tick_id(row.schedule_id, epoch_s),
        schedule_id=row.schedule_id,
        scheduled_for=epoch_s * 1000,
        status=status,
        definition_version=row.definition_version,
        reason=reason,
        run_request=request,
    )


def _row_ticks(
    row: ScheduleRow,
    dimensions_of: Mapping[str, Sequence[Mapping[str, Any]]],
    seen: Mapping[str, Any],
    now_ms: int,
) -> list[ScheduleTicked]:
    try:
        spec = parse_schedule(row.definition_json())
        due = due_ticks(
            spec,
            last_scheduled_for_ms=row.last_scheduled_at,
            first_seen_at_ms=row.first_seen_at or now_ms,
            now_ms=now_ms,
        )
    except InvalidSchedule as exc:
        # Unevaluable here (e.g. a zone this runtime lacks): one FAILED tick per definition version,
        # at the instant its definition was recorded, so every sweep computes the same tick id.
        epoch = ulid_time_ms(row.definition_event_id or row.row_version) // 1000
        if tick_id(row.schedule_id, epoch) in seen:
            return []
        return [_ticked(row, epoch, "FAILED", exc.message, None)]
    out = []
    for epoch in due:
        try:
            spec.check_targets(dimensions_of)  # the deployed assets may have changed since the definition
            dims = dimensions_of[spec.target[0]]
        except InvalidSchedule as exc:
            out.append(_ticked(row, epoch, "FAILED", exc.message, None))
            continue
        decision = decide_tick(spec, dims, epoch, enabled=row.enabled)
        out.append(_ticked(row, epoch, decision.status, decision.reason, _request_json(decision)))
    return out


def sweep_schedules(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> dict[str, int]:
    """Tick every due schedule of one workspace and submit pending run requests (ticks, requests)."""
    if not has_schedule_state(ctx, tenant_id, workspace_id):
        return {"ticks": 0, "runRequests": 0}  # never had a schedule: one read, nothing at rest
    read_at = ctx.clock_ms()
    state = refresh_schedules(ctx, tenant_id, workspace_id)
    manifest = load_current_manifest(ctx, tenant_id, workspace_id)
    dimensions_of = {k: list(a.dimensions) for k, a in (manifest.assets.items() if manifest else ())}
    now = ctx.clock_ms()
    if now - read_at > MAX_PROJECTION_LAG_MS:
        logger.warning(
            "schedules not evaluated: projection read %d ms ago (limit %d ms); the next sweep owes them",
            now - read_at,
            MAX_PROJECTION_LAG_MS,
        )
        return {"ticks": 0, "runRequests": 0}
    ticked = [
        t
        for row in state.visible_schedules()
        if not row.removed
        for t in _row_ticks(row, dimensions_of, state.ticks, now)
    ]
    events = [stamp(ctx, tenant_id, workspace_id, t, now) for t in ticked]
    # One at a time, oldest first: a crash leaves a prefix written, and the next sweep, starting after the
    # newest recorded tick, owes exactly the rest (a batch written concurrently could lose a tick).
    names = [name for made in events for name in append_made(ctx, tenant_id, workspace_id, [made])]
    if names:
        state = refresh_schedules(ctx, tenant_id, workspace_id, names)
    resolved = submit_pending_ticks(ctx, tenant_id, workspace_id, state)
    if resolved:
        refresh_schedules(ctx, tenant_id, workspace_id, resolved)
    return {"ticks": len(events), "runRequests": len(resolved)}
