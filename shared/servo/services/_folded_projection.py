"""One automation projection (schedules, sensors): ledger events folded into Parquet tables under a head.

Layout under the workspace: ``automation/{name}/_head.json`` (the published state, swapped by generation
CAS: watermark, the ids applied inside the look-back window, one file per table) and immutable,
content-addressed ``automation/{name}/{table}/{hex12}.parquet``. A table named in ``delta_tables`` (rows
that only come and, past the retention, go: the sensors' finished rows) is kept as delta files
(``_delta_files``) instead of one file: a publish writes the rows it changed, and the rows older than
the oldest row it still holds (``row_version``) are dropped from reads at once and from storage with
their whole file. A head written before a table was kept so names its one file, read as the first delta.

The ledger is read as the compactor reads it (a look-back window before the watermark plus the names a
writer hands over), and each projection's fold is idempotent, so an event read twice changes nothing and
a rebuild from the whole ledger equals the live tables. The run compactor ignores these run-less events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import Conflict, PreconditionFailed
from servo.core.events import Event
from servo.projections.codec import content_hex12, decode_table, encode_table
from servo.projections.schemas import Table
from servo.services import _compaction_ledger as ledger
from servo.services._delta_files import DeltaFile, add_delta
from servo.services.context import ServiceContext
from servo.store import ObjectStore, create_once

S = TypeVar("S")
_CAS_RETRIES = 20
# Decoded files kept per instance; past this many the memory starts over (merged-away files linger).
_CACHE_FILES = 4096


@dataclass(frozen=True, slots=True)
class Deltas:
    """One delta table's files (oldest first) and the ``row_version`` below which its rows are gone."""

    files: tuple[DeltaFile, ...] = ()
    expire_before: str = ""

    def body(self) -> dict[str, Any]:
        return {"expireBefore": self.expire_before, "files": [f.body() for f in self.files]}


@dataclass(frozen=True, slots=True)
class Head:
    generation: int
    watermark: str
    recent: frozenset[str]
    files: dict[str, str]
    deltas: dict[str, Deltas] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Read:
    """What a head holds: every table's rows, and each delta table's files and rows by key."""

    rows: dict[str, list[Any]]
    deltas: dict[str, Deltas]
    keyed: dict[str, dict[Any, Any]]


@dataclass(frozen=True, slots=True)
class FoldedProjection(Generic[S]):
    """How one projection turns table rows into its state, folds events and writes rows back."""

    name: str  # the folder under ``automation/``
    tables: Sequence[Table]
    from_rows: Callable[[Mapping[str, list[Any]]], S]  # table name -> rows
    to_rows: Callable[[S], Mapping[str, list[Any]]]
    fold: Callable[[S, list[Event], int], S]  # state, new events, now (ms)
    is_empty: Callable[[S], bool]
    delta_tables: frozenset[str] = frozenset()

    @property
    def head_path(self) -> str:
        return f"automation/{self.name}/_head.json"

    def load_head(self, store: ObjectStore) -> Head:
        obj = store.get(self.head_path)
        if obj is None:
            return Head(0, "", frozenset(), {})
        raw = loads_strict(obj.data)
        deltas = {
            name: Deltas(tuple(DeltaFile.from_body(f) for f in d["files"]), d["expireBefore"])
            for name, d in raw.get("deltas", {}).items()
        }
        return Head(obj.generation, raw["watermark"], frozenset(raw["recent"]), dict(raw["files"]), deltas)

    def _decoded(self, ctx: ServiceContext, store: ObjectStore, table: Table, name: str) -> list[Any]:
        cache: dict[str, list[Any]] = ctx.instance_state(f"{self.name}_tables", dict)
        found = cache.get(name)  # files are immutable: decoded once per instance
        if found is None:
            if len(cache) >= _CACHE_FILES:
                cache.clear()
            obj = store.get(name)
            if obj is None:
                raise Conflict(f"{self.name} projection file {name} is missing")
            found = cache[name] = decode_table(table, obj.data)
        return found

    def read(self, ctx: ServiceContext, store: ObjectStore, head: Head) -> _Read:
        """Every table's rows ``head`` names (a delta table's as its files merge), as ``publish``
        takes them."""
        rows: dict[str, list[Any]] = {}
        deltas: dict[str, Deltas] = {}
        keyed: dict[str, dict[Any, Any]] = {}
        for table in self.tables:
            name = head.files.get(table.name)
            if table.name not in self.delta_tables:
                rows[table.name] = [] if name is None else self._decoded(ctx, store, table, name)
                continue
            found = head.deltas.get(table.name)
            if found is None:  # written before this table was kept as deltas: its one file is the first
                old = [] if name is None else self._decoded(ctx, store, table, name)
                newest = max((r.row_version for r in old), default="")
                found = Deltas((DeltaFile(name, len(old), newest),) if name is not None and old else ())
            by_key: dict[Any, Any] = {}
            for f in found.files:
                by_key.update(self._kept_rows(ctx, store, table, f, found.expire_before))
            deltas[table.name], keyed[table.name] = found, by_key
            rows[table.name] = list(by_key.values())
        return _Read(rows, deltas, keyed)

    def _kept_rows(
        self, ctx: ServiceContext, store: ObjectStore, table: Table, f: DeltaFile, expire_before: str
    ) -> dict[Any, Any]:
        return {
            table.key(r): r
            for r in self._decoded(ctx, store, table, f.path)
            if r.row_version >= expire_before
        }

    def read_state(self, ctx: ServiceContext, store: ObjectStore, head: Head) -> S:
        return self.from_rows(self.read(ctx, store, head).rows)

    def exists(self, ctx: ServiceContext, tenant_id: str, workspace_id: str) -> bool:
        """Whether this workspace ever published this projection (one read: its head)."""
        return ctx.workspace_store(tenant_id, workspace_id).get(self.head_path) is not None

    def load(self, ctx: ServiceContext, tenant_id: str, workspace_id: str) -> S:
        """The published tables (possibly behind the ledger by what no writer refreshed yet)."""
        store = ctx.workspace_store(tenant_id, workspace_id)
        return self.read_state(ctx, store, self.load_head(store))

    def _write(self, store: ObjectStore, table: Table, rows: list[Any]) -> str:
        data = encode_table(table, rows)
        name = f"automation/{self.name}/{table.name}/{content_hex12(data)}.parquet"
        create_once(store, name, data)
        return name

    def _write_files(
        self, ctx: ServiceContext, store: ObjectStore, state: S, read: _Read
    ) -> tuple[dict[str, str], dict[str, Deltas]]:
        files, deltas = {}, {}
        rows = self.to_rows(state)
        for table in self.tables:
            if table.name in self.delta_tables:
                deltas[table.name] = self._write_deltas(ctx, store, table, rows[table.name], read)
            else:
                files[table.name] = self._write(store, table, rows[table.name])
        return files, deltas

    def _write_deltas(
        self, ctx: ServiceContext, store: ObjectStore, table: Table, rows: list[Any], read: _Read
    ) -> Deltas:
        """The delta table holding ``rows``: a file of the rows changed since ``read``, the files whose
        rows all went dropped. Rows go only by age (every row older than the oldest kept goes, and a
        row is replaced by one no older); anything else rewrites the table as one file."""

        def write(new: list[Any]) -> DeltaFile:
            new.sort(key=table.key)
            newest = max(r.row_version for r in new)
            return DeltaFile(self._write(store, table, new), len(new), newest)

        if not rows:
            return Deltas()
        old, before = read.keyed[table.name], read.deltas[table.name]
        floor = min(r.row_version for r in rows)
        changed, keys, stays = {}, set(), floor >= before.expire_before
        for row in rows:
            key = table.key(row)
            keys.add(key)
            was = old.get(key)
            if was is not row and was != row:
                changed[key] = row
                stays = stays and (was is None or row.row_version >= was.row_version)
        if not stays or any(r.row_version >= floor for k, r in old.items() if k not in keys):
            return Deltas((write(list(rows)),), floor)
        kept = tuple(f for f in before.files if f.newest >= floor)
        return Deltas(
            add_delta(kept, changed, lambda f: self._kept_rows(ctx, store, table, f, floor), write), floor
        )

    def publish(
        self,
        ctx: ServiceContext,
        store: ObjectStore,
        head: Head,
        read: _Read,
        state: S,
        watermark: str,
        recent: Iterable[str],
    ) -> None:
        """Write ``state``'s files (of a delta table, the rows changed since ``read``, what ``head``
        holds) and move the head to them.

        Raises:
            PreconditionFailed: the head moved since ``head`` was loaded.
        """
        files, deltas = self._write_files(ctx, store, state, read)
        body: dict[str, Any] = {"watermark": watermark, "recent": list(recent), "files": files}
        if deltas:
            body["deltas"] = {name: d.body() for name, d in sorted(deltas.items())}
        store.put(self.head_path, canonical_bytes(body), if_generation_match=head.generation)

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
            read = self.read(ctx, store, head)
            state = self.from_rows(read.rows)
            if not found.seen_ids and (settle is None or settle(state) == state):
                return state
            new_state = self.fold(state, found.events, ctx.clock_ms())
            if settle is not None:
                new_state = settle(new_state)
            if not publish or (head.generation == 0 and self.is_empty(new_state)):
                return new_state  # a read of a workspace without these definitions leaves nothing behind
            watermark = ledger.advance(head.watermark, found.seen_ids, ctx.clock_ms())
            recent = ledger.recent_ids(head.recent | found.seen_ids, watermark)
            try:
                self.publish(ctx, store, head, read, new_state, watermark, recent)
            except PreconditionFailed:
                continue  # another refresh published first: fold again on top of it
            return new_state
        raise Conflict(f"{self.name} projection lost the publish race; the next sweep will retry")
