"""The read side of the projections: head pointer -> manifest (live runs) or index bucket (ended runs)
-> run segments.

Readers never list anything and never touch ``ledger/`` (design §5.5). Every file below the pointer
is immutable and named by its content, so the cache (a plain dict the caller keeps across requests
on a warm instance) can key decoded files by path forever; only the pointer is read per snapshot,
and the manifest is re-read only when the pointer's generation moved.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from servo.core.errors import InvalidInput
from servo.core.events import EncodedEvent
from servo.core.rows import DepRow, RunRow, TaskRow
from servo.core.state import FoldState, RunPartition
from servo.projections import layout
from servo.projections.partitions import Segment, apply_segments, decode_segments, dropped_events
from servo.services._projection_cache import ProjectionCache, projection_cache
from servo.store import ObjectStore


@dataclass(frozen=True, slots=True)
class RunView:
    """One run as GetRun shows it: the run row, its task rows (by task_key) and its edges."""

    run: RunRow | None
    tasks: list[TaskRow] = field(default_factory=list)
    deps: list[DepRow] = field(default_factory=list)


def _decode_body(body: str) -> Any:
    return EncodedEvent(body)  # decoded only if a late event forces a re-fold of this run


def _skip_body(body: str) -> Any:
    return None


def _partition_key(run_id: str, chain: tuple[str, ...], events: bool) -> tuple[Any, ...]:
    # The run id is part of the key: a segment file holds many runs, so chains of different runs
    # can be equal.
    return ("partition", events, run_id, chain)


def _read(store: ObjectStore, path: str) -> bytes:
    found = store.get(path)
    if found is None:
        raise InvalidInput(f"published state names {path}, which does not exist", details={"path": path})
    return found.data


class Snapshot:
    """One published version of the state (or the empty state before the first publish)."""

    def __init__(
        self,
        store: ObjectStore,
        generation: int,
        pointer: layout.Pointer | None,
        pointer_raw: bytes,
        manifest: layout.Manifest,
        cache: ProjectionCache,
    ) -> None:
        self.store = store
        self.generation = generation  # 0 when nothing was ever published
        self.pointer = pointer
        self.pointer_raw = pointer_raw
        self.manifest = manifest
        self.cache = cache

    # -- files ---------------------------------------------------------------------------------

    def bucket(self, bucket: str) -> dict[str, layout.IndexEntry]:
        """The index entries of one bucket, by run id (a later file's entry replaces an earlier one's)."""
        ref = self.manifest.buckets.get(bucket)
        entries: dict[str, layout.IndexEntry] = {}
        for f in ref.files if ref is not None else ():
            entries.update(self.index_file(f.file.path))
        return entries

    def index_file(self, path: str) -> dict[str, layout.IndexEntry]:
        """The entries of one index file, by run id (cached: the file is immutable; do not change it)."""
        key = ("index", path)
        found = self.cache.files.get(key)
        if found is None:
            found = {e.run_id: e for e in layout.decode_index(_read(self.store, path), path)}
            self.cache.files.put(key, found)
        return found

    def index_entry(self, run_id: str) -> layout.IndexEntry | None:
        """A run's entry: the manifest's live entry while it runs, its bucket's once it ended."""
        live = self.manifest.live.get(run_id)
        if live is not None:
            return live
        # Newest file first, the first that has it wins (as in ``bucket``), without merging the
        # bucket's every entry: callbacks of a run not published yet ask here on each call.
        ref = self.manifest.buckets.get(layout.bucket_of(run_id))
        for f in reversed(ref.files if ref is not None else ()):
            found = self.index_file(f.file.path).get(run_id)
            if found is not None:
                return found
        return None

    def segment(self, path: str, run_id: str) -> Segment:
        """``run_id``'s segment in the file at ``path`` (a file holds every run one compaction touched,
        so it is read once for all of them)."""
        key = ("segments", path)
        found = self.cache.files.get(key)
        if found is None:
            found = decode_segments(_read(self.store, path), path)
            self.cache.files.put(key, found)
        segment = found.get(run_id)
        if segment is None:
            raise InvalidInput(f"projection file {path} holds no segment of run {run_id}")
        return segment

    def load_chain(self, run_id: str, chain: tuple[str, ...], *, events: bool) -> RunPartition:
        """The partition a segment chain describes; reuses the longest cached prefix of the chain."""
        for cut in range(len(chain), 0, -1):
            hit = self.cache.files.get(_partition_key(run_id, chain[:cut], events))
            if hit is not None:
                break
        else:
            cut, hit = 0, None
        rest = [self.segment(p, run_id) for p in chain[cut:]]
        if hit is not None and not rest:
            return hit
        decode: Callable[[str], Any] = _decode_body if events else _skip_body
        part = apply_segments(run_id, ([] if hit is None else [_as_base(hit)]) + rest, decode)
        if hit is not None:
            part.events = {**hit.events, **part.events} if events else {}
            for event_id in dropped_events(rest) if events else ():
                part.events.pop(event_id, None)
        elif not events:
            part.events = {}
        self.remember_partition(run_id, chain, part, events=events)
        return part

    def remember_partition(
        self, run_id: str, chain: tuple[str, ...], part: RunPartition, *, events: bool
    ) -> None:
        """Cache the partition ``chain`` describes (with its events, or only its rows)."""
        self.cache.files.put(_partition_key(run_id, chain, events), part)

    # -- reads ---------------------------------------------------------------------------------

    def partition(self, run_id: str, *, events: bool = False) -> RunPartition | None:
        """The published partition of a run; its ``events`` are loaded only when asked (compaction)."""
        entry = self.index_entry(run_id)
        if entry is None:
            return None
        return self.load_chain(run_id, entry.segments, events=events)

    def get_run(self, run_id: str) -> RunView | None:
        """The run row with its task rows (sorted by key) and edges, or None for an unknown run."""
        part = self.partition(run_id)
        if part is None:
            return None
        return RunView(
            part.run,
            [part.tasks[k] for k in sorted(part.tasks)],
            [part.deps[k] for k in sorted(part.deps)],
        )

    def public_state(self, run: RunRow) -> str:
        """The API state of a run, as computed when it was last compacted."""
        entry = self.index_entry(run.run_id)
        if entry is not None and entry.public_state is not None:
            return entry.public_state
        from servo.core.states import public_run_state

        return public_run_state(run, ())

    def list_runs(
        self, *, limit: int, cursor: tuple[int, str] | None = None, state: str | None = None
    ) -> tuple[list[RunRow], tuple[int, str] | None]:
        """Runs by triggered_at desc, run_id asc, after ``cursor``; ``state`` filters on the API state.

        Live runs come from the manifest; buckets (ended runs) are opened newest first and the walk
        stops once no unopened bucket can hold a run that sorts before the page's last one.
        """
        if limit < 1:
            raise InvalidInput("limit must be at least 1")
        live = self.manifest.live

        def keep(entry: layout.IndexEntry) -> RunRow | None:
            run = entry.run
            if run is None or (state is not None and entry.public_state != state):
                return None
            if cursor is not None and (-run.triggered_at, run.run_id) <= (-cursor[0], cursor[1]):
                return None
            return run

        refs = sorted(
            self.manifest.buckets.items(),
            key=lambda kv: -1 if kv[1].max_triggered_at is None else kv[1].max_triggered_at,
            reverse=True,
        )
        picked: list[tuple[int, str, RunRow]] = []
        for entry in live.values():
            if (run := keep(entry)) is not None:
                picked.append((run.triggered_at, run.run_id, run))
        picked.sort(key=lambda t: (-t[0], t[1]))
        for name, ref in refs:
            if ref.max_triggered_at is None:
                continue  # only partitions whose RunTriggered has not folded yet
            if len(picked) > limit and picked[limit][0] > ref.max_triggered_at:
                break
            for entry in self.bucket(name).values():
                # A live entry is newer than a bucket's (a run written there before it ended).
                if entry.run_id not in live and (run := keep(entry)) is not None:
                    picked.append((run.triggered_at, run.run_id, run))
            picked.sort(key=lambda t: (-t[0], t[1]))
            del picked[limit + 1 :]
        page = [run for _, _, run in picked[:limit]]
        more = len(picked) > limit
        return page, ((page[-1].triggered_at, page[-1].run_id) if more and page else None)

    def active_run_ids(self) -> list[str]:
        """Runs that may still change (not in a terminal API state)."""
        return sorted(self.manifest.active_run_ids)

    def load_state(self, tenant_id: str, workspace_id: str) -> FoldState:
        """The whole published state with events (for rebuild checks and tests; reads every bucket)."""
        state = FoldState(tenant_id, workspace_id)
        entries = {r: e for name in sorted(self.manifest.buckets) for r, e in self.bucket(name).items()}
        entries.update(self.manifest.live)
        for run_id, entry in entries.items():
            state.runs[run_id] = self.load_chain(run_id, entry.segments, events=True)
        return state


def _as_base(part: RunPartition) -> Segment:
    rows: dict[str, list[Any]] = {"runs": [part.run] if part.run is not None else []}
    rows["tasks"] = list(part.tasks.values())
    rows["dep_satisfaction"] = list(part.deps.values())
    rows["timers"] = list(part.timers.values())
    rows["dispatch_outbox"] = list(part.outbox.values())
    rows["idempotency_keys"] = list(part.idempotency.values())
    return Segment(part.run_id, True, rows)


def load_snapshot(
    store: ObjectStore, cache: MutableMapping[str, Any] | None = None, *, max_age_ms: int = 0
) -> Snapshot:
    """The currently published snapshot of a workspace store (names relative to the workspace).

    Reads the head pointer, which holds the manifest (a head of before names a manifest object, read
    when the head's generation is new to the cache). With
    ``max_age_ms``, a head this instance read or published that recently is taken without a read.
    """
    pc = projection_cache(cache)
    known = _last_seen(store, pc)
    if known is not None and max_age_ms > 0 and pc.heads.age_ms() <= max_age_ms:
        return known
    head = store.get(layout.POINTER_PATH)
    if head is None:
        return Snapshot(store, 0, None, b"", layout.EMPTY_MANIFEST, pc)
    if known is not None and known.generation == head.generation:
        pc.heads.confirm()
        return known
    pointer, manifest = layout.decode_head(head.data)
    if manifest is None:  # a head published before the pointer held its manifest
        manifest = layout.Manifest.decode(_read(store, pointer.manifest_path))
    pc.remember_head((head.generation, pointer, head.data, manifest))
    return Snapshot(store, head.generation, pointer, head.data, manifest, pc)


def last_seen_snapshot(store: ObjectStore, cache: MutableMapping[str, Any] | None) -> Snapshot | None:
    """The last head this instance read or published, without reading anything (None when cold).

    It may be stale, but never wrong about what it shows: every file below it is immutable, what it
    shows applied stays applied, and the next head was published no earlier than it says.
    """
    return None if cache is None else _last_seen(store, projection_cache(cache))


def _last_seen(store: ObjectStore, pc: ProjectionCache) -> Snapshot | None:
    head = pc.heads.head
    if head is None:
        return None
    generation, pointer, raw, manifest = head
    return Snapshot(store, generation, pointer, raw, manifest, pc)
