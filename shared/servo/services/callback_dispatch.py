"""The completing callback dispatches what its success made ready (issue 21; docs/contracts.md).

On GCS the head pointer is published at most once a second, and a chain whose every hop waited for a
publish ran at a second a hop. So ``completed``, once its TaskFinished is durable, folds it ahead of
the run as its instance sees it (``_recent_writes``) and asks the controller's pure rule
(``controller.after_completion``, which is ``after_publish`` narrowed to this task's downstream) what
to dispatch. It carries that out exactly as the compactor would (``effects.carried_out``: the same
deterministic dispatch id and Cloud Task name, enqueue first, then DispatchRequested and
DispatchEnqueued in the ledger), so whichever of the two comes second is deduplicated by the queue
and by the fold's idempotency keys. The compactor folds these events like any others.

What keeps it safe: the decision is taken from a view that can only lag the ledger. A cancel it did
not see is published soon after, and ``started`` (always checked on a fresh head) stops the task; a
completion the sweep may have beaten dispatches nothing. A failure here is logged and left to the
compactor, which decides the same dispatch from its next publish: the TaskFinished is already durable,
and failing the request would only invite a retried completion.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

from servo.core import controller as ctl
from servo.core.events import Event
from servo.core.rows import TaskRow
from servo.core.state import RunPartition
from servo.jsonlog import log_fields
from servo.services._recent_writes import RecentWrites
from servo.services.context import ServiceContext

logger = logging.getLogger("servo.callback_dispatch")


def has_downstream(part: RunPartition, task_key: str) -> bool:
    """Whether some task of the run waits on ``task_key``: only such a task's facts can make another
    ready, so only they need folding ahead in the run's other callbacks (``RecentWrites``)."""
    return bool(ctl.downstream_of(part, task_key))


class Planned(NamedTuple):
    """What a completion made due, worked out before it is written (``planned_dispatches``)."""

    after: RunPartition  # the run with the completion folded ahead
    decisions: list[ctl.Decision]
    completion: Event
    base: RunPartition | None = None  # the run's last view ``after`` extends (RecentWrites.further)


def planned_dispatches(
    ctx: ServiceContext,
    recent: RecentWrites,
    tenant_id: str,
    workspace_id: str,
    part: RunPartition,
    finished: TaskRow,
    completion: Event,
) -> Planned:
    """The run with ``completion`` (of ``finished``) folded ahead, and the dispatches it made due.

    Worked out before the completion is written, so that its writer knows whether the next hop is
    already on its way: a completion whose callback dispatches its downstream only records progress
    and may share a later publish (ledger.append_events' ``urgent``). Where ``part`` is the run's last
    view, the completion is folded onto it as the run's next callbacks would fold it, so they start
    from this fold (``dispatch_made_ready``) instead of folding it again."""
    from servo.core.fold import fold_ahead

    if not has_downstream(part, finished.task_key):
        return Planned(part, [], completion)  # nothing to make ready: no copy of the run, no pass
    after = recent.further(tenant_id, workspace_id, part, [completion])
    base = part if after is not None else None
    if after is None:
        after = fold_ahead(part, [completion])
    return Planned(after, ctl.after_completion(after, finished, ctx.clock_ms()), completion, base)


def dispatch_made_ready(
    ctx: ServiceContext,
    recent: RecentWrites,
    tenant_id: str,
    workspace_id: str,
    finished: TaskRow,
    planned: Planned,
) -> int:
    """Carry out the ``planned`` dispatches of ``finished``'s durable completion; how many."""
    after, decisions, completion, base = planned
    if base is not None:
        recent.advance(tenant_id, workspace_id, base, after, [completion])
    if not decisions:
        return 0
    labels = {"run_id": finished.run_id, "task_key": finished.task_key}
    return (
        len(decisions)
        if carry_out_ahead(ctx, recent, tenant_id, workspace_id, after, decisions, labels)
        else 0
    )


def carry_out_ahead(
    ctx: ServiceContext,
    recent: RecentWrites,
    tenant_id: str,
    workspace_id: str,
    part: RunPartition,
    decisions: Sequence[ctl.Decision],
    labels: dict[str, str],
) -> bool:
    """Carry out dispatches decided ahead of a publish (by a completion, or a trigger:
    ``trigger_dispatch``) and remember their events; False when that failed, which is logged and
    left to the compactor (it decides the same from its next publish)."""
    from servo.services.effects import carried_out

    try:
        written = carried_out(ctx, tenant_id, workspace_id, part, decisions)
    except Exception:
        logger.exception(
            "dispatch ahead of a publish failed; the compactor dispatches", extra=log_fields(labels=labels)
        )
        return False
    recent.remember(tenant_id, workspace_id, written, ctx.clock_ms())
    return True
