"""The backfill fold (automation §5, §6.4): backfill events -> ``backfills`` and ``backfill_chunks`` rows.

Creation and planning merge by the smallest event id (a duplicate changes nothing). State moves are kept
as a set (one per idempotency key, the smallest event id) and replayed in event-id order through the
compare-and-set of ``apply_transition``, so the state is a function of the event *set*: any order,
duplication or batching gives the same rows and a rebuild equals the live tables (§6.8).

A chunk's state and its partitions' outcomes come from outside the backfill events: its run requests'
rows and their runs' states. ``settle_chunks`` recomputes them from those (a pure function of what it
is given), so the stored values are those of the last settle.

Retention (§5: backfills 90 days): ``expire_backfills`` drops a backfill that ended more than 90 days
ago with its chunks and keeps only its id, marked ``expired_at``; the fold ignores every later event of
that id, so a late, repeated or replayed event (a create replayed under its Idempotency-Key) brings no
half row back. The mark is a function of the event set (the ended move's time and id), so a rebuild
expired at the same instant equals the live tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from servo.core._backfill_events import BackfillChunkPlanned, BackfillCreated, BackfillStateChanged
from servo.core.backfill_partitions import chunk_partitions
from servo.core.backfills import (
    CANCELLED,
    PENDING,
    TERMINAL_STATES,
    Transition,
    apply_transition,
    backfill_run_key,
    chunk_id,
    chunk_request_id,
    chunk_state,
    partition_outcome,
)
from servo.core.canonical_json import canonical_bytes
from servo.core.events import Event

__all__ = [
    "BACKFILL_RETENTION_MS",
    "BackfillChunkRow",
    "BackfillRow",
    "chunk_requests",
    "expire_backfills",
    "fold_backfill_event",
    "fold_backfills",
    "settle_chunks",
]

# §5: a backfill is kept 90 days after it ended; a live one (PENDING, RUNNING, PAUSED) for ever.
BACKFILL_RETENTION_MS = 90 * 86_400_000


def _json(value: Any) -> str:
    return canonical_bytes(value).decode("utf-8")


@dataclass(frozen=True, slots=True)
class BackfillRow:
    """One backfill; request fields are None until its BackfillCreated is folded."""

    backfill_id: str
    assets: str | None = None  # JSON list
    selector: str | None = None  # JSON object
    partition_keys: str | None = None  # JSON list, sorted as resolved
    chunk_size: int = 0
    max_concurrent_runs: int = 0
    labels: str | None = None  # JSON object
    parent_backfill_id: str | None = None
    created_at: int | None = None
    create_event_id: str | None = None
    total_partitions: int = 0
    chunk_count: int = 0
    moves: str = "[]"  # JSON list of every recorded move, event-id order (the fold replays them)
    state: str = PENDING
    state_version: int = 1
    row_version: str = ""
    expired_at: int | None = None  # set on the id-only row left by retention: when the backfill ended

    @property
    def created(self) -> bool:
        return self.create_event_id is not None

    def ended_move(self) -> dict[str, Any] | None:
        """The applied move into the terminal state it is in (None while live)."""
        if self.state not in TERMINAL_STATES:
            return None
        return next(m for m in reversed(self.transitions()) if m["applied"])

    def keys(self) -> list[str]:
        return json.loads(self.partition_keys or "[]")

    def asset_list(self) -> list[str]:
        return json.loads(self.assets or "[]")

    def label_map(self) -> dict[str, str]:
        return json.loads(self.labels or "{}")

    def transitions(self) -> list[dict[str, Any]]:
        """Every recorded move with whether the fold applied it (§4 ``transitions``)."""
        return list(json.loads(self.moves))


@dataclass(frozen=True, slots=True)
class BackfillChunkRow:
    """One chunk; planned once its BackfillChunkPlanned is folded. ``outcomes``, ``request_statuses`` and
    ``run_ids`` are per position (JSON lists) as of the last settle."""

    chunk_id: str
    backfill_id: str
    chunk_index: int
    partition_keys: str  # JSON list
    planned_event_id: str | None = None
    planned_at: int | None = None
    state: str = PENDING
    outcomes: str = "[]"
    request_statuses: str = "[]"
    run_ids: str = "[]"
    row_version: str = ""

    @property
    def planned(self) -> bool:
        return self.planned_event_id is not None

    def keys(self) -> list[str]:
        return json.loads(self.partition_keys)


def chunk_requests(chunk: BackfillChunkRow) -> list[tuple[str, str, str]]:
    """(request id, run key, partition key) of each position, derived as BackfillChunkPlanned derives them."""
    return [
        (chunk_request_id(chunk.chunk_id, j), backfill_run_key(chunk.backfill_id, chunk.chunk_index, j), key)
        for j, key in enumerate(chunk.keys())
    ]


def _replay(row: BackfillRow, moves: list[dict[str, Any]]) -> BackfillRow:
    state, version = PENDING, 1
    out = []
    for move in sorted(moves, key=lambda m: m["eventId"]):
        step = Transition(move["from"], move["to"], move["stateVersion"])
        applied = apply_transition(state, version, step)
        if applied:
            state, version = step.to_state, step.state_version
        out.append({**move, "applied": applied})
    return replace(row, moves=_json(out), state=state, state_version=version)


def _created(
    row: BackfillRow, chunks: dict[str, BackfillChunkRow], event: Event, data: BackfillCreated
) -> BackfillRow:
    pieces = chunk_partitions(data.partition_keys, data.chunk_size)
    for index, keys in enumerate(pieces):
        cid = chunk_id(data.backfill_id, index)
        seen = chunks.get(cid) or BackfillChunkRow(cid, data.backfill_id, index, _json(list(keys)))
        chunks[cid] = replace(seen, row_version=max(seen.row_version, event.event_id))
    if row.create_event_id is not None and row.create_event_id <= event.event_id:
        return row
    return replace(
        row,
        assets=_json(list(data.assets)),
        selector=_json(data.selector),
        partition_keys=_json(list(data.partition_keys)),
        chunk_size=data.chunk_size,
        max_concurrent_runs=data.max_concurrent_runs,
        labels=_json(data.labels or {}),
        parent_backfill_id=data.parent_backfill_id,
        created_at=event.timestamp_ms,
        create_event_id=event.event_id,
        total_partitions=len(data.partition_keys),
        chunk_count=len(pieces),
    )


def _planned(chunks: dict[str, BackfillChunkRow], event: Event, data: BackfillChunkPlanned) -> None:
    cid = data.chunk_id
    seen = chunks.get(cid) or BackfillChunkRow(
        cid, data.backfill_id, data.chunk_index, _json(list(data.partition_keys))
    )
    seen = replace(seen, row_version=max(seen.row_version, event.event_id))
    if seen.planned_event_id is None or event.event_id < seen.planned_event_id:
        seen = replace(seen, planned_event_id=event.event_id, planned_at=event.timestamp_ms)
    chunks[cid] = seen


def fold_backfill_event(
    backfills: dict[str, BackfillRow], chunks: dict[str, BackfillChunkRow], event: Event
) -> None:
    """Fold one event into the two row maps (in place; others are ignored)."""
    data = event.data
    if not isinstance(data, BackfillCreated | BackfillChunkPlanned | BackfillStateChanged):
        return
    row = backfills.get(data.backfill_id) or BackfillRow(data.backfill_id)
    if row.expired_at is not None:
        return  # expired: nothing of it comes back
    if isinstance(data, BackfillCreated):
        row = _created(row, chunks, event, data)
    elif isinstance(data, BackfillChunkPlanned):
        _planned(chunks, event, data)
    else:
        # One move per idempotency key (a duplicate keeps the smallest event id), replayed in order.
        moves = {(m["stateVersion"], m["to"]): m for m in json.loads(row.moves)}
        seen = moves.get((data.state_version, data.to_state))
        if seen is None or event.event_id < seen["eventId"]:
            moves[(data.state_version, data.to_state)] = {
                "eventId": event.event_id,
                "from": data.from_state,
                "to": data.to_state,
                "stateVersion": data.state_version,
                "reason": data.reason,
                "at": event.timestamp_ms,
            }
        row = _replay(row, list(moves.values()))
    backfills[data.backfill_id] = replace(row, row_version=max(row.row_version, event.event_id))


def settle_chunks(
    backfills: Mapping[str, BackfillRow],
    chunks: Mapping[str, BackfillChunkRow],
    request_status: Callable[[str], tuple[str, str | None] | None],
    run_state: Callable[[str], str | None],
) -> dict[str, BackfillChunkRow]:
    """Every chunk with its state and per-partition outcomes recomputed (§6.4 "Chunk"): from its
    requests' outcomes (``request_status(request_id)`` -> (outcome, run id) or None while pending) and
    their runs' public states. A terminal chunk keeps what it had."""
    out: dict[str, BackfillChunkRow] = {}
    for cid, chunk in chunks.items():
        backfill = backfills.get(chunk.backfill_id)
        cancelled = backfill is not None and backfill.state == CANCELLED
        if chunk.state in TERMINAL_STATES:
            out[cid] = chunk  # final: its runs ended (or it was never planned and the backfill cancelled)
            continue
        statuses: list[str | None] = []
        runs: list[str | None] = []
        outcomes: list[str] = []
        for request_id, _run_key, _key in chunk_requests(chunk) if chunk.planned else ():
            resolved = request_status(request_id)
            status, run_id = resolved if resolved is not None else (None, None)
            statuses.append(status)
            runs.append(run_id)
            outcomes.append(partition_outcome(status, run_state(run_id) if run_id else None))
        out[cid] = replace(
            chunk,
            state=chunk_state(chunk.planned, outcomes, backfill_cancelled=cancelled),
            outcomes=_json(outcomes),
            request_statuses=_json(statuses),
            run_ids=_json(runs),
        )
    return out


def expire_backfills(
    backfills: Mapping[str, BackfillRow],
    chunks: Mapping[str, BackfillChunkRow],
    now_ms: int,
    keep_ms: int = BACKFILL_RETENTION_MS,
) -> tuple[dict[str, BackfillRow], dict[str, BackfillChunkRow]]:
    """The rows without the backfills that ended before ``now_ms - keep_ms`` (§5), each replaced by its
    id-only row, and without their chunks (the given maps are not modified)."""
    cutoff = now_ms - keep_ms
    rows = dict(backfills)
    expired = set()
    for bf, row in backfills.items():
        ended = row.ended_move() if row.created else None
        if ended is not None and ended["at"] < cutoff:
            expired.add(bf)
            rows[bf] = BackfillRow(
                bf,
                state=row.state,
                state_version=row.state_version,
                row_version=ended["eventId"],
                expired_at=ended["at"],
            )
    return rows, {k: c for k, c in chunks.items() if c.backfill_id not in expired}


def fold_backfills(
    events: Iterable[Event],
    backfills: Mapping[str, BackfillRow] | None = None,
    chunks: Mapping[str, BackfillChunkRow] | None = None,
) -> tuple[dict[str, BackfillRow], dict[str, BackfillChunkRow]]:
    """The rows after ``events`` (the given maps are not modified)."""
    rows, pieces = dict(backfills or {}), dict(chunks or {})
    for event in events:
        fold_backfill_event(rows, pieces, event)
    return rows, pieces
