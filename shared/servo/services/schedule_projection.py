"""The schedule projection: schedule events of the ledger folded into three Parquet tables.

Layout under the workspace: ``automation/schedules/_head.json`` (the published state, swapped by
generation CAS: watermark, the ids applied inside the look-back window, one file per table) and
immutable, content-addressed ``automation/schedules/{table}/{hex12}.parquet``.

The ledger is read as the compactor reads it (a look-back window before the watermark plus the names a
writer hands over), and the fold's merges are idempotent, so an event read twice changes nothing and a
rebuild from the whole ledger equals the live tables. The run compactor ignores these run-less events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import Conflict, PreconditionFailed
from servo.core.events import Event
from servo.core.schedule_fold import ScheduleState, expire_schedule_history, fold_schedules
from servo.projections.codec import content_hex12, decode_table, encode_table
from servo.projections.schedule_tables import SCHEDULE_TABLES
from servo.services import _compaction_ledger as ledger
from servo.services.context import ServiceContext
from servo.store import ObjectStore, create_once

HEAD = "automation/schedules/_head.json"
_CAS_RETRIES = 20


@dataclass(frozen=True, slots=True)
class _Head:
    generation: int
    watermark: str
    recent: frozenset[str]
    files: dict[str, str]


def _load_head(store: ObjectStore) -> _Head:
    obj = store.get(HEAD)
    if obj is None:
        return _Head(0, "", frozenset(), {})
    raw = loads_strict(obj.data)
    return _Head(obj.generation, raw["watermark"], frozenset(raw["recent"]), dict(raw["files"]))


def _read_state(ctx: ServiceContext, store: ObjectStore, head: _Head) -> ScheduleState:
    cache: dict[str, list[Any]] = ctx.instance_state("schedule_tables", dict)
    state = ScheduleState()
    for table, attr in SCHEDULE_TABLES:
        target = getattr(state, attr)
        name = head.files.get(table.name)
        if name is None:
            continue
        rows = cache.get(name)  # files are immutable: decoded once per instance
        if rows is None:
            obj = store.get(name)
            if obj is None:
                raise Conflict(f"schedule projection file {name} is missing")
            rows = cache[name] = decode_table(table, obj.data)
        target.update((table.key(r), r) for r in rows)
    return state


def has_schedule_state(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> bool:
    """Whether this workspace ever recorded a schedule event (one read: its head)."""
    return ctx.workspace_store(tenant_id, workspace_id).get(HEAD) is not None


def load_schedule_state(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> ScheduleState:
    """The published schedule tables (possibly behind the ledger by what no writer refreshed yet)."""
    store = ctx.workspace_store(tenant_id, workspace_id)
    return _read_state(ctx, store, _load_head(store))


def _write_files(store: ObjectStore, state: ScheduleState) -> dict[str, str]:
    files = {}
    for table, attr in SCHEDULE_TABLES:
        rows = getattr(state, attr)
        data = encode_table(table, [rows[k] for k in sorted(rows)])
        name = f"automation/schedules/{table.name}/{content_hex12(data)}.parquet"
        create_once(store, name, data)
        files[table.name] = name
    return files


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
    change it makes is published even when no event is new.

    Raises:
        Conflict: lost the head's CAS race too many times in a row.
    """
    store = ctx.workspace_store(tenant_id, workspace_id)
    hint = list(hint)
    for _ in range(_CAS_RETRIES):
        head = _load_head(store)
        # Without a head no schedule event was ever published: the first one is written by a deploy
        # that hands its names over, so only the recent ledger is looked at, never the whole history.
        start = head.watermark or ledger.ulid_floor(ctx.clock_ms()) + "0" * 16
        names, _bad = ledger.candidate_names(store, start, head.recent, hint, lookback_ms)
        found = ledger.read_events(store, names, tenant_id, workspace_id)
        state = _read_state(ctx, store, head)
        settled = settle(state) if settle is not None else state
        if not found.seen_ids and settled == state:
            return state
        # History past the retention goes as the projection is rewritten anyway (no write of its own).
        new_state = expire_schedule_history(fold_schedules(state, found.events), ctx.clock_ms())
        if settle is not None:
            new_state = settle(new_state)
        if head.generation == 0 and not any(getattr(new_state, attr) for _, attr in SCHEDULE_TABLES):
            return new_state  # a read of a workspace without schedules leaves nothing behind
        watermark = ledger.advance(head.watermark, found.seen_ids, ctx.clock_ms())
        body = {
            "watermark": watermark,
            "recent": list(ledger.recent_ids(head.recent | found.seen_ids, watermark)),
            "files": _write_files(store, new_state),
        }
        try:
            store.put(HEAD, canonical_bytes(body), if_generation_match=head.generation)
        except PreconditionFailed:
            continue  # another refresh published first: fold again on top of it
        return new_state
    raise Conflict("schedule projection lost the publish race; the next sweep will retry")


def rebuild_schedules(events: Iterable[Event], now_ms: int | None = None) -> ScheduleState:
    """The tables from a whole ledger's events (what a live projection must equal); with ``now_ms``,
    without the history a live projection refreshed then has let go."""
    state = fold_schedules(ScheduleState(), events)
    return state if now_ms is None else expire_schedule_history(state, now_ms)
