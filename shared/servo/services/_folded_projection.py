"""One automation projection (schedules, sensors): ledger events folded into Parquet tables under a head.

Layout under the workspace: ``automation/{name}/_head.json`` (the published state, swapped by generation
CAS: watermark, the ids applied inside the look-back window, one file per table) and immutable,
content-addressed ``automation/{name}/{table}/{hex12}.parquet``.

The ledger is read as the compactor reads it (a look-back window before the watermark plus the names a
writer hands over), and each projection's fold is idempotent, so an event read twice changes nothing and
a rebuild from the whole ledger equals the live tables. The run compactor ignores these run-less events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import Conflict, PreconditionFailed
from servo.core.events import Event
from servo.projections.codec import content_hex12, decode_table, encode_table
from servo.projections.schemas import Table
from servo.services import _compaction_ledger as ledger
from servo.services.context import ServiceContext
from servo.store import ObjectStore, create_once

S = TypeVar("S")
_CAS_RETRIES = 20


@dataclass(frozen=True, slots=True)
class Head:
    generation: int
    watermark: str
    recent: frozenset[str]
    files: dict[str, str]


@dataclass(frozen=True, slots=True)
class FoldedProjection(Generic[S]):
    """How one projection turns table rows into its state, folds events and writes rows back."""

    name: str  # the folder under ``automation/``
    tables: Sequence[Table]
    from_rows: Callable[[Mapping[str, list[Any]]], S]  # table name -> rows
    to_rows: Callable[[S], Mapping[str, list[Any]]]
    fold: Callable[[S, list[Event], int], S]  # state, new events, now (ms)
    is_empty: Callable[[S], bool]

    @property
    def head_path(self) -> str:
        return f"automation/{self.name}/_head.json"

    def load_head(self, store: ObjectStore) -> Head:
        obj = store.get(self.head_path)
        if obj is None:
            return Head(0, "", frozenset(), {})
        raw = loads_strict(obj.data)
        return Head(obj.generation, raw["watermark"], frozenset(raw["recent"]), dict(raw["files"]))

    def read_state(self, ctx: ServiceContext, store: ObjectStore, head: Head) -> S:
        cache: dict[str, list[Any]] = ctx.instance_state(f"{self.name}_tables", dict)
        rows: dict[str, list[Any]] = {}
        for table in self.tables:
            name = head.files.get(table.name)
            if name is None:
                rows[table.name] = []
                continue
            found = cache.get(name)  # files are immutable: decoded once per instance
            if found is None:
                obj = store.get(name)
                if obj is None:
                    raise Conflict(f"{self.name} projection file {name} is missing")
                found = cache[name] = decode_table(table, obj.data)
            rows[table.name] = found
        return self.from_rows(rows)

    def exists(self, ctx: ServiceContext, tenant_id: str, workspace_id: str) -> bool:
        """Whether this workspace ever published this projection (one read: its head)."""
        return ctx.workspace_store(tenant_id, workspace_id).get(self.head_path) is not None

    def load(self, ctx: ServiceContext, tenant_id: str, workspace_id: str) -> S:
        """The published tables (possibly behind the ledger by what no writer refreshed yet)."""
        store = ctx.workspace_store(tenant_id, workspace_id)
        return self.read_state(ctx, store, self.load_head(store))

    def _write_files(self, store: ObjectStore, state: S) -> dict[str, str]:
        files = {}
        rows = self.to_rows(state)
        for table in self.tables:
            data = encode_table(table, rows[table.name])
            name = f"automation/{self.name}/{table.name}/{content_hex12(data)}.parquet"
            create_once(store, name, data)
            files[table.name] = name
        return files

    def refresh(
        self,
        ctx: ServiceContext,
        tenant_id: str,
        workspace_id: str,
        hint: Iterable[str] = (),
        *,
        lookback_ms: int = ledger.SWEEP_LOOKBACK_MS,
        settle: Callable[[S], S] | None = None,
        publish: bool = True,
    ) -> S:
        """Fold the events written since the last publish (and the ``hint`` names) and publish.

        ``settle`` adds, after the fold, what depends on more than the ledger's events (a sensor's run
        items, backfill chunks settled from their runs). It is applied on every attempt, and a change
        it makes is published even when the ledger brought nothing new. ``publish=False`` only reads:
        the state as a refresh would publish it, for a writer that may not write these tables.

        Raises:
            Conflict: lost the head's CAS race too many times in a row.
        """
        store = ctx.workspace_store(tenant_id, workspace_id)
        written = ledger.written_events(ctx.workspace_cache(tenant_id, workspace_id))
        hint = list(hint)
        for _ in range(_CAS_RETRIES):
            head = self.load_head(store)
            # Without a head no event was ever published: the first one is written by a writer that
            # hands its names over, so only the recent ledger is looked at, never the whole history.
            start = head.watermark or ledger.ulid_floor(ctx.clock_ms()) + "0" * 16
            names, _bad = ledger.candidate_names(store, start, head.recent, hint, lookback_ms)
            found = ledger.read_events(store, names, tenant_id, workspace_id, written)
            state = self.read_state(ctx, store, head)
            if not found.seen_ids and (settle is None or settle(state) == state):
                return state
            new_state = self.fold(state, found.events, ctx.clock_ms())
            if settle is not None:
                new_state = settle(new_state)
            if not publish or (head.generation == 0 and self.is_empty(new_state)):
                return new_state  # a read of a workspace without these definitions leaves nothing behind
            watermark = ledger.advance(head.watermark, found.seen_ids, ctx.clock_ms())
            body = {
                "watermark": watermark,
                "recent": list(ledger.recent_ids(head.recent | found.seen_ids, watermark)),
                "files": self._write_files(store, new_state),
            }
            try:
                store.put(self.head_path, canonical_bytes(body), if_generation_match=head.generation)
            except PreconditionFailed:
                continue  # another refresh published first: fold again on top of it
            return new_state
        raise Conflict(f"{self.name} projection lost the publish race; the next sweep will retry")
