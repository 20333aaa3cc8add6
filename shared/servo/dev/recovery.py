"""What the embedded stack does when it starts on a data directory a previous process left behind.

The embedded stack keeps its queue in memory and, under ``servo dev``, runs its worker in the same
process. After that process stopped (Ctrl-C, ``kill -9``, a crash), its data can show:

- dispatches enqueued but never started by a worker (task DISPATCHED, outbox row CREATED, or PENDING
  when the acknowledgement was deferred to a pass that never came: settings.defer_dispatch_ack): they
  were lost with the in-memory queue, so they are enqueued again at once — the sweep alone would wait
  for its 10-minute repair threshold, or its next tick;
- attempts its own worker was running (task RUNNING): that worker is gone, so each attempt is
  reported lost at once (FAILED, INFRASTRUCTURE, ``WORKER_LOST``, retryable; CANCELLED when its run is
  being cancelled) — the sweep alone would wait for the heartbeat limit — and the run's view says why.

Retries waiting for a lost timer need nothing here: the sweep dispatches a due retry without its timer.
"""

from __future__ import annotations

import logging

from servo.core import controller as ctl
from servo.core.ids import dispatch_id
from servo.core.state import RunPartition
from servo.core.states import RUN_TERMINAL, RunState, TaskState
from servo.services._compaction_ledger import SWEEP_LOOKBACK_MS
from servo.services.context import ServiceContext

logger = logging.getLogger("servo.dev")
LOST_MESSAGE = "the worker running this attempt was lost (servo dev restarted)"


def restart_decisions(part: RunPartition, *, owns_worker: bool, started_at_ms: int) -> list[ctl.Decision]:
    """The repairs one run needs after the process that served it stopped (pure).

    Only what the previous process left is touched: a dispatch enqueued, or an attempt started, at or
    after ``started_at_ms`` (this process's start) belongs to this process's queue and worker.
    """
    run = part.run
    if run is None or RunState(run.state) in RUN_TERMINAL:
        return []
    out: list[ctl.Decision] = []
    for task in part.tasks.values():
        if not task.attempt_id:
            continue
        if task.state == TaskState.DISPATCHED.value and not run.cancel_requested:
            row = part.outbox.get(dispatch_id(task.run_id, task.task_key, task.attempt))
            if row is not None and row.status in ("CREATED", "PENDING") and row.created_at < started_at_ms:
                out.append(
                    ctl.EnqueueDispatch(
                        row.run_id,
                        row.task_key,
                        row.attempt,
                        row.attempt_id,
                        row.dispatch_id,
                        row.worker_queue,
                        repair_of=row.row_version,
                    )
                )
        elif task.state == TaskState.RUNNING.value and owns_worker and (task.started_at or 0) < started_at_ms:
            cancelled = run.cancel_requested
            out.append(
                ctl.FailAttempt(
                    task.run_id,
                    task.task_key,
                    task.attempt,
                    task.attempt_id,
                    "CANCELLED" if cancelled else "FAILED",
                    "CANCELLED" if cancelled else "INFRASTRUCTURE",
                    "WORKER_LOST",
                    LOST_MESSAGE,
                    not cancelled,
                )
            )
    return out


def recover(ctx: ServiceContext, *, owns_worker: bool, started_at_ms: int) -> dict[str, int]:
    """Fold what the previous process left unpublished, then repair every active run at once.

    ``started_at_ms``: when this process started; its API may already serve while this runs.
    """
    from servo.services.effects import carry_out
    from servo.services.orchestrate import compact_and_act
    from servo.services.timers import known_workspaces

    redriven = lost = 0
    workspaces, _ = known_workspaces(ctx)  # a bad registry entry is the sweep's to report
    for tenant_id, workspace_id in workspaces:
        try:
            compact_and_act(ctx, tenant_id, workspace_id, lookback_ms=SWEEP_LOOKBACK_MS)
            for run_id in ctx.snapshot(tenant_id, workspace_id).active_run_ids():
                part = ctx.snapshot(tenant_id, workspace_id).partition(run_id)
                if part is None:
                    continue
                decisions = restart_decisions(part, owns_worker=owns_worker, started_at_ms=started_at_ms)
                if decisions:
                    carry_out(ctx, tenant_id, workspace_id, part, decisions)
                    lost += sum(isinstance(d, ctl.FailAttempt) for d in decisions)
                    redriven += sum(isinstance(d, ctl.EnqueueDispatch) for d in decisions)
        except Exception:
            # One workspace's trouble must not keep the others from recovering; the sweep retries it.
            logger.exception("recovery of %s/%s failed; the sweep will repair it", tenant_id, workspace_id)
    if redriven or lost:
        logger.warning("on start: re-drove %d lost dispatch(es), reported %d lost attempt(s)", redriven, lost)
    return {"redriven": redriven, "lost": lost}
