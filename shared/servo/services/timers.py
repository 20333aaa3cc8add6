"""The timers function: the minute sweep (Cloud Scheduler) and due timers (Cloud Tasks).

The sweep is the anti-entropy pass of design §6: it re-kicks compaction (finalize events can be lost),
then runs the controller's sweep over every active run — zombies, attempt timeouts, cancel grace,
run timeouts, stuck dispatches and retries whose timer was lost. Every action is idempotent, so a
duplicated or late tick changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from servo.core import controller as ctl
from servo.core.errors import InvalidInput, PreconditionFailed, ServoError
from servo.core.events import TimerFired, make_encoded_event
from servo.core.ids import INTERNAL_ROOT, parse_timer_id, validate_scope_id, validate_tenant_id
from servo.jsonlog import log_fields
from servo.services._compaction_ledger import SWEEP_LOOKBACK_MS
from servo.services.context import ServiceContext
from servo.services.ledger import append_made
from servo.services.run_creation import finish_creation

logger = logging.getLogger("servo.timers")

# Under the reserved tenant id, so no tenant's objects can land in the registry (see validate_tenant_id).
WORKSPACES_PREFIX = f"{INTERNAL_ROOT}/workspaces/"


def register_workspace(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> None:
    """Make a workspace known to the sweep (bucket-root marker, create-if-absent, written at deploy)."""
    with contextlib.suppress(PreconditionFailed):
        ctx.store.create(f"{WORKSPACES_PREFIX}{tenant_id}/{workspace_id}", b"{}")


def known_workspaces(ctx: ServiceContext) -> tuple[list[tuple[str, str]], list[str]]:
    """The registered workspaces, and the registry entries that name none (to be skipped and reported)."""
    found, bad = [], []
    for meta in ctx.store.list(WORKSPACES_PREFIX):
        entry = meta.name[len(WORKSPACES_PREFIX) :]
        try:
            tenant, workspace = entry.split("/")
            found.append((validate_tenant_id(tenant), validate_scope_id(workspace, "workspace")))
        except (ValueError, InvalidInput):
            bad.append(entry)
    return found, bad


def _scope(body: Mapping[str, Any]) -> tuple[str, str] | None:
    tenant, workspace = body.get("tenantId"), body.get("workspaceId")
    if tenant is None and workspace is None:
        return None
    if not isinstance(tenant, str) or not isinstance(workspace, str):
        raise InvalidInput("tenantId and workspaceId must be given together as strings")
    return validate_tenant_id(tenant), validate_scope_id(workspace, "workspace")


def sweep_workspace(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, config: ctl.ControllerConfig
) -> dict[str, int]:
    from servo.services.effects import carry_out
    from servo.services.orchestrate import compact_and_act

    compacted = 0
    if ctx.settings.sweep_kicks:
        if _needs_kick(ctx, tenant_id, workspace_id):
            kick_compactor(ctx, tenant_id, workspace_id)
    else:
        # Every compaction already finds unapplied objects newer than its watermark minus 10 s, so a
        # lost finalize event is repaired by the next write; the sweep's wider window covers the double
        # fault, and the manifest keeps the ids applied in it so the sweep does not read them again.
        outcome = compact_and_act(ctx, tenant_id, workspace_id, lookback_ms=SWEEP_LOOKBACK_MS)
        compacted = outcome.events_applied
    now = ctx.clock_ms()
    decisions = 0
    for run_id in ctx.snapshot(tenant_id, workspace_id).active_run_ids():
        # Fresh per run: the repairs carried out for one run publish before the next is read.
        part = ctx.snapshot(tenant_id, workspace_id).partition(run_id)
        if part is None:
            continue
        if part.run is None or not part.tasks:
            # Published without RunTriggered or without its plan: its creator died between the writes.
            decisions += finish_creation(ctx, tenant_id, workspace_id, run_id)
        found = ctl.sweep(part, now, config)
        if found:
            decisions += len(found)
            carry_out(ctx, tenant_id, workspace_id, part, found)
    from servo.services.schedule_sweep import sweep_schedules

    # After the run repairs, so a schedule's trouble never holds them up.
    scheduled = sweep_schedules(ctx, tenant_id, workspace_id)
    from servo.services.asset_projection import has_asset_catalog, refresh_asset_catalog
    from servo.services.backfill_planner import REPAIR_AFTER_MS, plan_backfills
    from servo.services.sensor_sweep import sweep_sensors

    sensed = sweep_sensors(ctx, tenant_id, workspace_id)
    planned = plan_backfills(ctx, tenant_id, workspace_id, repair_after_ms=REPAIR_AFTER_MS)
    # Once a catalog was read, the sweep keeps it within a minute of the ledger, so a read after a
    # busy quiet spell folds a minute of completions, not the whole spell's.
    if has_asset_catalog(ctx, tenant_id, workspace_id):
        refresh_asset_catalog(ctx, tenant_id, workspace_id)
    return {
        "eventsCompacted": compacted,
        "repairs": decisions,
        "scheduleTicks": scheduled["ticks"],
        "sensorEvaluations": sensed["evaluations"],
        "backfillChunks": planned["chunks"],
    }


KICKS_PREFIX = "ledger/kicks/"


def _needs_kick(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> bool:
    """Only a workspace with work in flight, or ledger objects past what was published, is kicked:
    an idle workspace costs the sweep one list and no write ("nothing that costs money at rest")."""
    from servo.core.events import ledger_object_name

    store = ctx.workspace_store(tenant_id, workspace_id)
    manifest = ctx.snapshot(tenant_id, workspace_id).manifest
    if manifest.active_run_ids:
        return True
    watermark = manifest.events_processed_through
    start = ledger_object_name(watermark) if watermark else None
    newer = [m for m in store.list("ledger/orchestration/", start_offset=start, limit=2) if m.name != start]
    return bool(newer)


def kick_compactor(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> str:
    """Re-kick compaction through the normal finalize path: a tiny ``ledger/kicks/{ulid}.kick`` object.

    The compactor (the only writer of state/) scans the recent ledger when it sees one. Kicks are not
    events; the bucket's lifecycle rule deletes them by their ``.kick`` suffix.
    """
    name = f"{KICKS_PREFIX}{ctx.new_id()}.kick"
    ctx.workspace_store(tenant_id, workspace_id).create(name, b"{}")
    return name


def sweep(ctx: ServiceContext, body: Mapping[str, Any]) -> dict[str, Any]:
    """Sweep every registered workspace (or the one ``body`` names).

    One workspace that fails — a registry entry naming none, a corrupt head — is skipped, logged and
    listed under ``skipped``; it never stops the sweep of the others, so the answer is still a 200.
    """
    config = ctl.ControllerConfig(cancel_grace_ms=ctx.settings.cancel_grace_sec * 1000)
    scope = _scope(body)
    targets, bad = ([scope], []) if scope is not None else known_workspaces(ctx)
    skipped = [_skip(entry, "the registry entry names no valid tenant/workspace") for entry in bad]
    results = {}
    for tenant_id, workspace_id in targets:
        try:
            results[f"{tenant_id}/{workspace_id}"] = sweep_workspace(ctx, tenant_id, workspace_id, config)
        except Exception as exc:
            # A ServoError's message is written for callers; anything else may carry a machine path.
            reason = exc.message if isinstance(exc, ServoError) else type(exc).__name__
            skipped.append(_skip(f"{tenant_id}/{workspace_id}", reason, exc))
    return {"workspaces": results, "skipped": skipped}


def _skip(workspace: str, reason: str, exc: BaseException | None = None) -> dict[str, str]:
    logger.error(
        f"sweep skipped workspace {workspace}: {reason}",
        exc_info=exc,
        extra=log_fields(labels={"workspace": workspace}, category="SWEEP_SKIPPED"),
    )
    return {"workspace": workspace, "error": reason}


def fire_timer(ctx: ServiceContext, body: Mapping[str, Any]) -> dict[str, Any]:
    """A due timer delivered by Cloud Tasks: record TimerFired; compaction and the controller act on it."""
    scope = _scope(body)
    timer_id = body.get("timerId")
    if scope is None or not isinstance(timer_id, str):
        raise InvalidInput("a timer needs tenantId, workspaceId and timerId")
    parts = parse_timer_id(timer_id)
    tenant_id, workspace_id = scope
    if parts.run_id is not None and ctx.snapshot(tenant_id, workspace_id).index_entry(parts.run_id) is None:
        # Timers are requested only for published runs, so this one is stray or forged. Its TimerFired
        # would make a run partition with no run that stays active (swept, and kicked, every minute
        # for ever): acknowledge it, so it is not redelivered, and write nothing.
        return {"acknowledged": True, "timerId": timer_id, "ignored": "unknown run"}
    now = ctx.clock_ms()
    # Wire timer types are snake_case (contracts §6); timer ids name the kind more briefly.
    kinds = {"retry": "retry", "heartbeat": "heartbeat_check", "sla": "sla_check"}
    timer_type = kinds.get(parts.kind, "cron")
    made = make_encoded_event(
        TimerFired(
            timer_id=timer_id,
            timer_type=timer_type,
            run_id=parts.run_id,
            task_key=parts.task_key,
            attempt=parts.attempt,
        ),
        event_id=ctx.ids.new(now),
        timestamp_ms=now,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
    )
    append_made(ctx, tenant_id, workspace_id, [made])
    return {"acknowledged": True, "timerId": timer_id}
