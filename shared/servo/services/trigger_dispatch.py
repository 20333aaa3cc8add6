"""A new run's creation, appended; on the embedded stack with its roots dispatched by the trigger itself.

A run's roots used to wait for the publish of its creation, and a short run paid that publish besides
the one of its end. Where the roots' callbacks reach the process that triggered
(``settings.trigger_dispatch``: the embedded stack), the trigger folds the run from its creation
events alone and carries out the controller's root dispatches exactly as the compactor would
(``controller.after_trigger``; the same dispatch ids, so whichever of the two comes second is
deduplicated). The creation then unblocks nothing the compactor must do at once: it is handed over
as progress and shares the publish of what follows (a short run's end). The roots' callbacks see the
run in this instance's memory (``RecentWrites.unpublished_view``); a reader that asks for the run
first has it published (``ServiceContext.before_read``). See docs/contracts.md, "Dispatch by the
trigger".
"""

from __future__ import annotations

from collections.abc import Sequence

from servo.core import controller as ctl
from servo.core.events import Event
from servo.core.fold import fold_ahead
from servo.core.state import RunPartition
from servo.services._recent_writes import recent_writes
from servo.services.callback_dispatch import carry_out_ahead
from servo.services.context import ServiceContext
from servo.services.ledger import append_made, hasten


def append_creation(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, run_id: str, made: Sequence[tuple[Event, bytes]]
) -> None:
    """Append a run's RunTriggered and PlanCreated (as ``run_creation`` made them) and see its roots
    dispatched: by this trigger where it may, else by the publish the write awaits."""
    recent = recent_writes(ctx) if ctx.settings.trigger_dispatch else None
    if recent is None:
        append_made(ctx, tenant_id, workspace_id, made)
        return
    events = [event for event, _ in made]
    now = ctx.clock_ms()
    part = fold_ahead(RunPartition(run_id), events)
    decisions = ctl.after_trigger(part, now)
    if not decisions:
        append_made(ctx, tenant_id, workspace_id, made)
        return
    names = append_made(ctx, tenant_id, workspace_id, made, await_publish=False, urgent=False)
    recent.remember(tenant_id, workspace_id, events, now)
    if not carry_out_ahead(ctx, recent, tenant_id, workspace_id, part, decisions, {"run_id": run_id}):
        # Left to the compactor: its publish now unblocks the roots, so it should not wait for company.
        hasten(ctx, tenant_id, workspace_id, names)
