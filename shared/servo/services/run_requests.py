"""Run requests to runs (automation §6.3): a TRIGGERED tick's request goes through TriggerRun's own
planner and ``run_keys/`` reservation, and its outcome is recorded as ``RunRequestResolved``.

A request is submitted until it has an outcome: right after its tick is written and again by every
sweep while it is PENDING. The reservation makes every retry, duplicate or concurrent submission land
on the one run its run key names; a different payload under that key is a recorded CONFLICT, never a
second run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from servo.core.canonical_json import loads_strict
from servo.core.errors import Conflict, InvalidInput
from servo.core.events import (
    Event,
    RunRequestResolved,
    RunTriggered,
    decode_event,
    ledger_object_name,
)
from servo.core.ids import run_key_object_name
from servo.core.schedule_fold import ScheduleState, ScheduleTickRow
from servo.services.context import ServiceContext
from servo.services.ledger import append_made, stamp
from servo.services.trigger import trigger_run


def _body(request: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "selection": list(request["selection"]),
        "runKey": request["run_key"],
        "labels": dict(request.get("labels") or {}),
    }
    if request.get("partition_key") is not None:
        body["partitionKey"] = request["partition_key"]
    return body


def resolve_run_request(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    request: Mapping[str, Any],
    trigger: Mapping[str, Any],
) -> RunRequestResolved:
    """Submit one request as TriggerRun would, with ``trigger`` as the run's source; never raises for the
    request's own faults (they are its outcome)."""
    request_id, run_key = request["request_id"], request["run_key"]
    fingerprint = request.get("request_fingerprint")
    try:
        status, answer = trigger_run(ctx, tenant_id, workspace_id, _body(request), trigger=trigger)
    except Conflict as exc:
        if exc.details.get("conflictType") != "RUN_KEY_FINGERPRINT_MISMATCH":
            raise  # a busy reservation: the next sweep submits again
        return RunRequestResolved(
            request_id,
            "CONFLICT",
            run_key,
            run_id=exc.details.get("existingRunId"),
            request_fingerprint=fingerprint,
            existing_fingerprint=exc.details.get("existingFingerprint"),
            message=exc.message,
        )
    except InvalidInput as exc:
        return RunRequestResolved(
            request_id, "REJECTED", run_key, request_fingerprint=fingerprint, message=exc.message
        )
    created = status == 201 or _reserved_for(ctx, tenant_id, workspace_id, run_key, trigger)
    outcome = "CREATED" if created else "EXISTING"
    return RunRequestResolved(
        request_id, outcome, run_key, run_id=answer["runId"], request_fingerprint=fingerprint
    )


def _reserved_for(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, run_key: str, trigger: Mapping[str, Any]
) -> bool:
    """Whether the run under ``run_key`` was made for this very source (a retry after a crash that
    followed the reservation): its RunTriggered carries our trigger, so the request CREATED it (R4)."""
    store = ctx.workspace_store(tenant_id, workspace_id)
    reservation = store.get(run_key_object_name(run_key))
    if reservation is None:
        return False
    event = store.get(ledger_object_name(loads_strict(reservation.data)["eventId"]))
    if event is None:
        return False
    data = decode_event(event.data).data
    return isinstance(data, RunTriggered) and data.trigger == dict(trigger)


def tick_request(tick: ScheduleTickRow) -> dict[str, Any]:
    """The run request a tick row carries, in its event form."""
    request: dict[str, Any] = {
        "request_id": tick.request_id,
        "run_key": tick.run_key,
        "request_fingerprint": tick.request_fingerprint,
        "selection": json.loads(tick.selection or "[]"),
        "labels": json.loads(tick.labels or "{}"),
    }
    if tick.partition_key is not None:
        request["partition_key"] = tick.partition_key
    return request


def submit_pending_ticks(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, state: ScheduleState
) -> list[str]:
    """Submit every TRIGGERED tick's request that has no outcome yet; returns the ledger names written."""
    now = ctx.clock_ms()
    events: list[tuple[Event, bytes]] = []
    for tick in sorted(state.ticks.values(), key=lambda t: t.scheduled_at):
        if tick.request_id is None or tick.request_id in state.requests:
            continue
        trigger = {"type": "cron", "schedule_id": tick.schedule_id, "tick_id": tick.tick_id}
        resolved = resolve_run_request(ctx, tenant_id, workspace_id, tick_request(tick), trigger)
        events.append(stamp(ctx, tenant_id, workspace_id, resolved, now))
    return append_made(ctx, tenant_id, workspace_id, events) if events else []
