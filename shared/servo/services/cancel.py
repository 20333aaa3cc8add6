"""CancelRun (behavior §8, design §6): append RunCancelRequested; the fold and the sweep do the rest.

Queued and pending tasks cancel at once in the fold; running workers see ``shouldCancel`` on their
next heartbeat (and 409 on ``started``); after the grace period the sweep forces them CANCELLED.

What the answer means — it never names a state the run will not have:

- **200** ``CANCELLED``: the run is cancelled (final).
- **202** ``CANCELLING`` with ``cancelRequested: true``: the cancel is recorded and the run has not ended.
  It is a request, not an outcome: a running task that completes before it sees the cancel keeps its
  result, so the run may still end SUCCEEDED or FAILED (a cancel racing completion loses). Poll the run
  for its final state.
- **409**: the run had already ended in another state (SUCCEEDED, FAILED, TIMED_OUT), or ended so
  before the cancel could act; ``details.state`` names it. Nothing was cancelled.

A repeated cancel answers by the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servo.core.errors import Conflict, InvalidInput, NotFound
from servo.core.events import RunCancelRequested, make_encoded_event
from servo.core.ids import validate_path_component
from servo.core.states import RUN_TERMINAL, RunState, public_run_state
from servo.core.timefmt import format_timestamp
from servo.services.context import ServiceContext
from servo.services.ledger import append_made
from servo.services.runs import RunView, load_run

MAX_REASON = 1024
REQUESTED = (
    "cancel requested: queued tasks are cancelled, running tasks stop at their next heartbeat or after the "
    "grace period; a task that completes first keeps its result, so the run may still end SUCCEEDED or FAILED"
)


def cancel_run(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    run_id: str,
    body: Mapping[str, Any],
    requested_by: str = "api",
) -> tuple[int, dict[str, Any]]:
    """Request the run's cancellation; (HTTP status, answer) by the rule in the module docstring."""
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
        # Repeating a cancel changes nothing: answered from the state it already reached.
        at = run.cancel_requested_at if run.cancel_requested_at is not None else now
        return _answer(run_id, view, at)
    if RunState(run.state) in RUN_TERMINAL:
        return _answer(run_id, view, now)
    made = make_encoded_event(
        RunCancelRequested(run_id=run_id, reason=reason, requested_by=requested_by),
        event_id=ctx.ids.new(now),
        timestamp_ms=now,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
    )
    append_made(ctx, tenant_id, workspace_id, [made])
    after = load_run(ctx, tenant_id, workspace_id, run_id)
    # Not compacted yet (GCP): the run has not ended as far as anyone can tell, so it is a request.
    return _answer(run_id, after if after is not None and after.run is not None else view, now)


def _answer(run_id: str, view: RunView, cancelled_at: int) -> tuple[int, dict[str, Any]]:
    assert view.run is not None
    state = public_run_state(view.run, view.tasks.values())
    at = format_timestamp(cancelled_at)
    if state == "CANCELLED":
        return 200, {"runId": run_id, "state": state, "cancelledAt": at}
    if RunState(view.run.state) in RUN_TERMINAL:
        raise Conflict(f"run {run_id} is already {state}; nothing was cancelled", details={"state": state})
    answer = {"runId": run_id, "state": "CANCELLING", "cancelledAt": at, "cancelRequested": True}
    return 202, {**answer, "message": REQUESTED}
