"""CancelRun (behavior §8, design §6): append RunCancelRequested; the fold and the sweep do the rest.

Queued and pending tasks cancel at once in the fold; running workers see ``shouldCancel`` on their
next heartbeat (and 409 on ``started``); after the grace period the sweep forces them CANCELLED.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servo.core.errors import Conflict, InvalidInput, NotFound
from servo.core.events import RunCancelRequested, make_event
from servo.core.ids import validate_path_component
from servo.core.states import RUN_TERMINAL, RunState, TaskState, public_run_state
from servo.core.timefmt import format_timestamp
from servo.services.context import ServiceContext
from servo.services.ledger import append_events
from servo.services.runs import load_run

MAX_REASON = 1024


def cancel_run(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    run_id: str,
    body: Mapping[str, Any],
    requested_by: str = "api",
) -> dict[str, Any]:
    validate_path_component(run_id, "run id", 64)
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise InvalidInput(f"reason must be a string of at most {MAX_REASON} characters")
    view = load_run(ctx, tenant_id, workspace_id, run_id)
    if view is None or view.run is None:
        raise NotFound(f"run {run_id} not found in workspace '{workspace_id}'")
    run = view.run
    now = ctx.clock_ms()
    if run.cancel_requested:
        # Repeating a cancel is a success that changes nothing (checked before terminal on purpose).
        at = run.cancel_requested_at if run.cancel_requested_at is not None else now
        return {
            "runId": run_id,
            "state": public_run_state(run, view.tasks.values()),
            "cancelledAt": format_timestamp(at),
        }
    if RunState(run.state) in RUN_TERMINAL:
        raise Conflict(
            f"run {run_id} is already {public_run_state(run, view.tasks.values())}",
            details={"state": public_run_state(run, view.tasks.values())},
        )
    event = make_event(
        RunCancelRequested(run_id=run_id, reason=reason, requested_by=requested_by),
        event_id=ctx.ids.new(now),
        timestamp_ms=now,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
    )
    append_events(ctx, tenant_id, workspace_id, [event])
    after = load_run(ctx, tenant_id, workspace_id, run_id)
    if after is not None and after.run is not None and after.run.cancel_requested:
        state = public_run_state(after.run, after.tasks.values())
    else:
        # Not compacted yet (GCP): predict what the fold will decide.
        running = any(t.state == TaskState.RUNNING.value for t in view.tasks.values())
        state = "CANCELLING" if running else "CANCELLED"
    return {"runId": run_id, "state": state, "cancelledAt": format_timestamp(now)}
