"""The backfill planner (automation §6.4): settle chunks from their runs, take the fold's own moves, plan
the next chunks, submit their run requests and cancel the runs of a cancelled backfill.

It runs after a backfill is created or moved, after a compaction that ended a backfill run (the
after-commit path) and in every sweep (the repair). Every decision is a pure function of the projection
(``servo.core.backfills``) and every write carries a derived key, so repeated, duplicated or concurrent
passes write the same events and the fold keeps one of each; the ``run_keys/`` reservation makes every
submission of one partition land on one run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from servo.core.backfill_fold import BackfillChunkRow, BackfillRow, chunk_requests
from servo.core.backfills import (
    CANCELLED,
    PENDING,
    RUNNING,
    TERMINAL_STATES,
    backfill_outcome,
    chunk_id,
    chunk_run_requests,
    chunks_to_plan,
)
from servo.core.events import (
    BackfillChunkPlanned,
    BackfillStateChanged,
    EventData,
    RunCancelRequested,
    RunRequestResolved,
)
from servo.core.schedule_fold import ScheduleState, settle_backfills
from servo.core.schedules import TickRunRequest
from servo.services._compaction_ledger import SWEEP_LOOKBACK_MS
from servo.services.context import ServiceContext
from servo.services.ledger import append_made, stamp
from servo.services.run_requests import resolve_run_request
from servo.services.schedule_projection import has_schedule_state, refresh_schedules

logger = logging.getLogger("servo.backfills")
REJECTED_CANCELLED = "backfill cancelled before this request was submitted"
# The pass that plans a chunk submits its requests right away; a sweep or an after-commit pass
# overlapping that submission would trigger each partition again (one run each by the run_keys/
# reservation, but every write of a second submission), so they repair a chunk another pass planned only
# once it was planned this long ago. A create (or its replay) and a move submit whatever is owed.
REPAIR_AFTER_MS = 30_000


def run_states(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> Callable[[str], str | None]:
    """A run's public state as the run projection last published it (None while not folded yet)."""
    snapshot = ctx.snapshot(tenant_id, workspace_id)

    def state_of(run_id: str) -> str | None:
        entry = snapshot.index_entry(run_id)
        return None if entry is None else entry.public_state

    return state_of


def settler(
    ctx: ServiceContext, tenant_id: str, workspace_id: str
) -> Callable[[ScheduleState], ScheduleState]:
    """The ``settle`` step of ``refresh_schedules``: chunks recomputed from requests and run states."""
    state_of = run_states(ctx, tenant_id, workspace_id)
    return lambda state: settle_backfills(state, state_of)


def chunks_of(state: ScheduleState, row: BackfillRow) -> list[BackfillChunkRow]:
    """The backfill's chunks in index order."""
    return [
        state.chunks[c] for i in range(row.chunk_count) if (c := chunk_id(row.backfill_id, i)) in state.chunks
    ]


def _open_partitions(chunks: list[BackfillChunkRow]) -> int:
    """Partitions of planned chunks whose run has not ended (pending requests count: they will run)."""
    import json

    return sum(
        1
        for c in chunks
        if c.planned
        for o in (json.loads(c.outcomes) or ["PENDING"] * len(c.keys()))
        if o in (PENDING, RUNNING)
    )


def _next_chunks(row: BackfillRow, chunks: list[BackfillChunkRow], lag_ms: int) -> list[EventData]:
    """The chunks to plan now (B4: while active runs plus the chunk's size stay within the maximum)."""
    indexes = chunks_to_plan(
        state=row.state,
        chunk_sizes=[len(c.keys()) for c in chunks],
        planned=sum(1 for c in chunks if c.planned),  # planned in index order, so a count is the next index
        active_runs=_open_partitions(chunks),
        max_concurrent_runs=row.max_concurrent_runs,
        lag_ms=lag_ms,
    )
    out: list[EventData] = []
    for index in indexes:
        keys = tuple(chunks[index].keys())
        requests = chunk_run_requests(row.backfill_id, index, keys, row.asset_list(), row.label_map())
        out.append(
            BackfillChunkPlanned(row.backfill_id, index, keys, {r.request_id: r.run_key for r in requests})
        )
    return out


def _own_move(row: BackfillRow, chunks: list[BackfillChunkRow]) -> list[EventData]:
    """The fold's own move: RUNNING once a chunk is planned, SUCCEEDED/FAILED once all ended."""
    move = backfill_outcome(row.state, [c.state for c in chunks])
    return (
        []
        if move is None
        else [BackfillStateChanged(row.backfill_id, row.state, move, row.state_version + 1)]
    )


def _request(row: BackfillRow, chunk: BackfillChunkRow, position: int) -> TickRunRequest:
    keys = tuple(chunk.keys())
    return chunk_run_requests(row.backfill_id, chunk.chunk_index, keys, row.asset_list(), row.label_map())[
        position
    ]


def _request_json(request: TickRunRequest) -> dict[str, Any]:
    return {
        "request_id": request.request_id,
        "run_key": request.run_key,
        "request_fingerprint": request.request_fingerprint,
        "selection": list(request.selection),
        "labels": dict(request.labels),
        "partition_key": request.partition_key,
    }


def _submissions(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, state: ScheduleState, leave: set[str]
) -> list[EventData]:
    """Every planned request without an outcome submitted (REJECTED once its backfill is cancelled), and
    a cancel request for every still-running run of a cancelled backfill; the requests of a live
    backfill's chunks in ``leave`` are left to the pass that planned them."""
    out: list[EventData] = []
    for chunk in sorted(state.chunks.values(), key=lambda c: (c.backfill_id, c.chunk_index)):
        row = state.backfills.get(chunk.backfill_id)
        if row is None or not row.created or not chunk.planned or chunk.state in TERMINAL_STATES:
            continue
        if chunk.chunk_id in leave and row.state != CANCELLED:
            continue
        outcomes = json.loads(chunk.outcomes)
        runs = json.loads(chunk.run_ids)
        for j, (request_id, run_key, _key) in enumerate(chunk_requests(chunk)):
            if request_id not in state.requests:
                if row.state == CANCELLED:
                    out.append(
                        RunRequestResolved(request_id, "REJECTED", run_key, message=REJECTED_CANCELLED)
                    )
                    continue
                trigger = {
                    "type": "backfill",
                    "backfill": {"backfill_id": row.backfill_id, "chunk_id": chunk.chunk_id},
                }
                out.append(
                    resolve_run_request(
                        ctx, tenant_id, workspace_id, _request_json(_request(row, chunk, j)), trigger
                    )
                )
            elif row.state == CANCELLED and j < len(outcomes) and outcomes[j] == RUNNING and runs[j]:
                out.append(
                    RunCancelRequested(runs[j], "backfill", reason=f"backfill {row.backfill_id} cancelled")
                )
    return out


def _live(state: ScheduleState) -> list[BackfillRow]:
    return sorted(
        (r for r in state.backfills.values() if r.created and r.state not in TERMINAL_STATES),
        key=lambda r: r.backfill_id,
    )


def plan_backfills(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    hint: Sequence[str] = (),
    *,
    lookback_ms: int = SWEEP_LOOKBACK_MS,
    repair_after_ms: int | None = None,
) -> dict[str, int]:
    """One planner pass over the workspace's backfills; returns what it wrote by kind.

    ``lookback_ms`` is how far before the projection's watermark the ledger is listed again: the sweep
    looks back two minutes, the after-commit path as far as the compactor (objects landing later than
    that are the sweep's to find). ``repair_after_ms`` (the sweep's and the after-commit path's): the
    requests of a chunk another pass planned less than that ago are that pass's to submit.
    """
    counts = {"moves": 0, "chunks": 0, "requests": 0}
    if not hint and not has_schedule_state(ctx, tenant_id, workspace_id):
        return counts  # never had automation state: one read, nothing at rest
    settle = settler(ctx, tenant_id, workspace_id)
    read_at = ctx.clock_ms()
    state = refresh_schedules(ctx, tenant_id, workspace_id, hint, settle=settle, lookback_ms=lookback_ms)
    if not _live(state) and all(c.state in TERMINAL_STATES or not c.planned for c in state.chunks.values()):
        return counts
    mine: set[str] = set()  # the chunks this pass planned: its own to submit
    for step in ("chunks", "moves"):
        now = ctx.clock_ms()
        if step == "chunks":
            decided = [d for r in _live(state) for d in _next_chunks(r, chunks_of(state, r), now - read_at)]
            mine = {
                chunk_id(d.backfill_id, d.chunk_index) for d in decided if isinstance(d, BackfillChunkPlanned)
            }
        else:
            decided = [d for r in _live(state) for d in _own_move(r, chunks_of(state, r))]
        # One at a time, in order: a crash leaves a prefix and the next pass owes exactly the rest.
        names = [
            n
            for d in decided
            for n in append_made(ctx, tenant_id, workspace_id, [stamp(ctx, tenant_id, workspace_id, d)])
        ]
        if names:
            state = refresh_schedules(
                ctx, tenant_id, workspace_id, names, settle=settle, lookback_ms=lookback_ms
            )
        counts[step] = len(decided)
    leave: set[str] = set()
    if repair_after_ms is not None:
        since = ctx.clock_ms() - repair_after_ms
        leave = {c for c, chunk in state.chunks.items() if (chunk.planned_at or 0) > since} - mine
    submitted = _submissions(ctx, tenant_id, workspace_id, state, leave)
    if submitted:
        written = append_made(
            ctx, tenant_id, workspace_id, [stamp(ctx, tenant_id, workspace_id, d) for d in submitted]
        )
        refresh_schedules(ctx, tenant_id, workspace_id, written, settle=settle, lookback_ms=lookback_ms)
    counts["requests"] = sum(isinstance(d, RunRequestResolved) for d in submitted)
    return counts
