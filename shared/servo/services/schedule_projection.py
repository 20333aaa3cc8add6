"""The schedule projection: schedule and backfill events of the ledger folded into Parquet tables
(``schedules``, ``schedule_ticks``, ``run_requests``, ``backfills``, ``backfill_chunks``) under
``automation/schedules/`` (the head, its CAS and the ledger reading are ``_folded_projection``'s).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from servo.core.events import Event
from servo.core.schedule_fold import ScheduleState, expire_schedule_history, fold_schedules, settle_backfills
from servo.projections.schedule_tables import SCHEDULE_TABLES
from servo.services import _compaction_ledger as ledger
from servo.services._folded_projection import FoldedProjection
from servo.services.context import ServiceContext

HEAD = "automation/schedules/_head.json"


def _from_rows(rows: Mapping[str, list[Any]]) -> ScheduleState:
    state = ScheduleState()
    for table, attr in SCHEDULE_TABLES:
        getattr(state, attr).update((table.key(r), r) for r in rows[table.name])
    return state


def _to_rows(state: ScheduleState) -> dict[str, list[Any]]:
    rows = {}
    for table, attr in SCHEDULE_TABLES:
        by_key = getattr(state, attr)
        rows[table.name] = [by_key[k] for k in sorted(by_key)]
    return rows


PROJECTION = FoldedProjection(
    "schedules",
    tuple(table for table, _ in SCHEDULE_TABLES),
    _from_rows,
    _to_rows,
    lambda state, events, _now: fold_schedules(state, events),
    lambda s: not any(getattr(s, attr) for _, attr in SCHEDULE_TABLES),
)


def has_schedule_state(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> bool:
    """Whether this workspace ever recorded a schedule event (one read: its head)."""
    return PROJECTION.exists(ctx, tenant_id, workspace_id)


def load_schedule_state(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> ScheduleState:
    """The published schedule tables (possibly behind the ledger by what no writer refreshed yet)."""
    return PROJECTION.load(ctx, tenant_id, workspace_id)


def refresh_schedules(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    hint: Iterable[str] = (),
    *,
    lookback_ms: int = ledger.SWEEP_LOOKBACK_MS,
    settle: Callable[[ScheduleState], ScheduleState] | None = None,
) -> ScheduleState:
    """Fold the schedule events written since the last publish (and the ``hint`` names) and publish.

    ``settle`` recomputes what depends on more than these events (backfill chunks from their runs); a
    change it makes is published even when no event is new. So is the cut of the history past its
    retention (§5), made after the settle (a chunk settles from its requests before they go): an idle
    workspace lets go of it too, and a read never shows what a rebuild at that instant would not.

    Raises:
        Conflict: lost the head's CAS race too many times in a row.
    """

    def settle_and_expire(state: ScheduleState) -> ScheduleState:
        settled = state if settle is None else settle(state)
        return expire_schedule_history(settled, ctx.clock_ms())

    return PROJECTION.refresh(
        ctx, tenant_id, workspace_id, hint, lookback_ms=lookback_ms, settle=settle_and_expire
    )


def rebuild_schedules(
    events: Iterable[Event],
    now_ms: int | None = None,
    run_state: Callable[[str], str | None] | None = None,
) -> ScheduleState:
    """The tables from a whole ledger's events (what a live projection must equal); with ``run_state``
    (a run id's public state), backfill chunks settled as the live refreshes settle them; with
    ``now_ms``, without the history a live projection refreshed then has let go (settled first: a
    live chunk settled while its requests were still kept)."""
    state = fold_schedules(ScheduleState(), events)
    if run_state is not None:
        state = settle_backfills(state, run_state)
    return state if now_ms is None else expire_schedule_history(state, now_ms)
