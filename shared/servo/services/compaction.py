"""Compaction: fold new ledger objects into the Parquet projections and publish them by CAS.

Any number of compactors may run at once, each for one finalize event delivered at least once. None
of them holds a lock; correctness rests on three things:

* every file below the head pointer is immutable, content-named and written create-if-absent, so a
  crash or a lost race between any two writes leaves only harmless orphans, and a retry that derives
  the same bytes finds its file already there;
* the head pointer moves only by a CAS on the generation that was read, so a publish is atomic and a
  loser re-reads the new head and folds only what the winner did not (often nothing: it stops);
* the fold is order-insensitive per run (``servo.core.fold``), and an event already present in its
  run's partition is never folded again, so duplicates and late, older-ULID events change nothing
  beyond what one clean ordered fold would produce.

Each invocation folds everything new it can find (its own hint plus the look-back window), so under
load one publish carries a large batch. Side effects are not done here: the caller acts on
``changed_run_ids`` after the publish, reading ``result.snapshot``, and on the run-less events it read
(``runless``: automation state such as sensor results, which this fold leaves to its own projection).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from servo.core.errors import Conflict, PreconditionFailed
from servo.core.events import EncodedEvent, Event, as_event, event_body
from servo.core.fold import fold
from servo.core.ids import UlidFactory, ulid_time_ms
from servo.core.liveness import superseded
from servo.core.state import FoldState, RunPartition
from servo.core.states import is_terminal_public, public_run_state
from servo.projections import layout
from servo.projections.codec import checksum, content_hex12
from servo.projections.partitions import (
    MAX_CHAIN,
    Segment,
    diff_segment,
    encode_segments,
    file_groups,
    full_segment,
)
from servo.services import _compaction_ledger as ledger
from servo.services.read_model import Snapshot, last_seen_snapshot, load_snapshot
from servo.settings import DEFAULT_ENDED_RUNS_PER_INDEX_WRITE
from servo.store import ObjectStore

__all__ = ["CompactionPolicy", "CompactionResult", "compact", "rebuild"]


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What one invocation did. ``snapshot`` is the state it published (or found already published)."""

    published: bool
    manifest_id: int
    events_applied: int
    malformed: list[tuple[str, str]]
    changed_run_ids: list[str]
    lag_ms: int
    snapshot: Snapshot
    runless: tuple[Event, ...] = ()  # the run-less events read, for the act phase

    @classmethod
    def unchanged(
        cls, snap: Snapshot, malformed: list[tuple[str, str]], runless: tuple[Event, ...] = ()
    ) -> CompactionResult:
        """Nothing to fold: ``snap`` already shows everything found applied."""
        return cls(
            published=False,
            manifest_id=snap.manifest.manifest_id,
            events_applied=0,
            malformed=malformed,
            changed_run_ids=[],
            lag_ms=0,
            snapshot=snap,
            runless=runless,
        )


def _cache_partition(
    snap: Snapshot, chain: tuple[str, ...], part: RunPartition, written: dict[str, str]
) -> None:
    # The partition just written serves the next reads as is: the compactor's copy (with events) and
    # the readers' (rows only), so a callback right after a publish reads no segment back. Its new
    # events are kept as the bodies just encoded, as a read would give them: a later base rewrite of
    # a big run then copies bodies instead of re-encoding every event the run ever had. (Events this
    # process wrote are such bodies already, from the fold.)
    encoded = {  # the segment's events only: a big run has thousands more
        i: EncodedEvent(body, e) for i, body in written.items() if isinstance(e := part.events.get(i), Event)
    }
    events = {**part.events, **encoded} if encoded else part.events
    snap.remember_partition(part.run_id, chain, replace(part, events=events), events=True)
    snap.remember_partition(part.run_id, chain, replace(part, events={}, checkpoint=None), events=False)


def _put_immutable(store: ObjectStore, path: str, data: bytes) -> layout.FileRef:
    # The name is the hash of the bytes: whoever wrote it first wrote these very bytes.
    with contextlib.suppress(PreconditionFailed):
        store.create(path, data, content_type="application/octet-stream")
    return layout.FileRef(path, checksum(data), len(data))


@dataclass(frozen=True, slots=True)
class CompactionPolicy:
    """How compactions of a deployment behave (its settings), apart from what one call folds.

    Attributes:
        min_publish_interval_ms: the least time between two head updates (1000 on GCS, whose objects
            take about one update a second); the invocation waits, and the wait lets more events in.
        lookback_ms: how far before the watermark new objects are looked for by listing.
        list_ledger: False when the caller hands over every object written since the last publish
            (the embedded stack's group commit), so the hints alone are the batch and no list is paid.
        sole_publisher: every head of the workspace is published through this instance's cache
            (the embedded stack's group commit), so the head it saw last is folded on without
            reading it again; a CAS lost to a publisher after all makes the next attempt read it.
        ended_per_index_write: how many ended runs wait in the manifest before they move to their
            index buckets together.
        max_attempts: CAS rounds before giving up with Conflict.
        sleep: how to wait (seconds), injected for tests.
    """

    min_publish_interval_ms: int = 0
    lookback_ms: int = ledger.DEFAULT_LOOKBACK_MS
    list_ledger: bool = True
    sole_publisher: bool = False
    ended_per_index_write: int = DEFAULT_ENDED_RUNS_PER_INDEX_WRITE
    max_attempts: int = 20
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True, slots=True)
class _Scope:
    """What one compaction call works on: a workspace's store at the caller's time."""

    store: ObjectStore
    tenant_id: str
    workspace_id: str
    now_ms: int
    policy: CompactionPolicy


@dataclass(frozen=True, slots=True)
class _Draft:
    """The next manifest's content, before its number and publish time are settled."""

    buckets: dict[str, layout.BucketRef]
    watermark: str
    recent: tuple[str, ...]
    live: dict[str, layout.IndexEntry]


def compact(
    store: ObjectStore,
    *,
    tenant_id: str,
    workspace_id: str,
    now_ms: int,
    hint: Sequence[str] = (),
    more_hint: Callable[[], Iterable[str]] | None = None,
    cache: MutableMapping[str, Any] | None = None,
    policy: CompactionPolicy = CompactionPolicy(),
) -> CompactionResult:
    """Fold every ledger object not yet applied and publish the result.

    Args:
        store: the workspace's store (names relative to ``{tenant}/{workspace}/``).
        tenant_id: the workspace's tenant; events of another scope are reported as malformed.
        workspace_id: the workspace.
        now_ms: the caller's clock.
        hint: ledger object names known to be new (the finalize event's object), found even when
            they lie before the look-back window.
        more_hint: names handed over while this invocation waited (other invocations riding its
            flight), asked for just before the ledger is looked at.
        cache: a warm instance's cache dict (decoded immutable files, the last head).
        policy: the deployment's compaction settings.

    Raises:
        Conflict: lost the publish race ``policy.max_attempts`` times in a row.
    """
    scope = _Scope(store, tenant_id, workspace_id, now_ms, policy)
    malformed: dict[str, str] = {}
    waited_for: int | None = None  # the head generation whose publish interval was waited out
    warm = last_seen_snapshot(store, cache)
    written = None if cache is None else ledger.written_events(cache)
    if warm is not None:
        # A warm instance stops a redelivery, or waits out the publish interval, before it reads the
        # head at all: one head read per publish, after the wait.
        if (done := _already_applied(warm, hint)) is not None:
            return done
        if (due := _interval_left_ms(warm, scope)) > 0:
            policy.sleep(due / 1000)
            waited_for = warm.generation
    for attempt in range(policy.max_attempts):
        # The sole publisher's first attempt folds on the head it saw last, unread (see the policy).
        snap = warm if attempt == 0 and policy.sole_publisher and warm else load_snapshot(store, cache)
        if (done := _already_applied(snap, hint)) is not None:
            # A redelivered finalize event, or another compaction folded these already: stop
            # (design §5.3) before paying for a list, reads or a wait for the publish interval.
            return done
        # Waited once per head: a head newer than the one waited for (another instance published
        # meanwhile) gets its own second.
        if snap.generation != waited_for and (due := _interval_left_ms(snap, scope)) > 0:
            policy.sleep(due / 1000)
            waited_for = snap.generation
            continue
        names, bad = ledger.candidate_names(
            store,
            snap.manifest.events_processed_through,
            snap.cache.applied.view(),
            [*hint, *(more_hint() if more_hint is not None else ())],
            policy.lookback_ms,
            list_ledger=policy.list_ledger,
        )
        malformed.update(bad)
        found = ledger.read_events(store, names, tenant_id, workspace_id, written)
        malformed.update(found.malformed)
        fresh, before = _unapplied(snap, found.stored)
        report = sorted(malformed.items())
        runless = tuple(e for e in found.events if e.run_id is None)
        if not fresh:
            # Every object read is applied in this head (or holds nothing to apply, and is reported
            # now): past the manifest's cap of recent ids only the instance's memory spares reading
            # it again.
            snap.cache.applied.note(found.seen_ids)
            return CompactionResult.unchanged(snap, report, runless)
        published = _publish(scope, snap, fresh, before, found)
        if published is None:
            continue  # another compactor published first: re-read and fold what it did not
        new_snap, changed = published
        new_snap.cache.applied.note(found.seen_ids)
        return CompactionResult(
            published=True,
            manifest_id=new_snap.manifest.manifest_id,
            events_applied=len(fresh),
            malformed=report,
            changed_run_ids=changed,
            lag_ms=max(0, now_ms - ulid_time_ms(as_event(fresh[0]).event_id)),
            snapshot=new_snap,
            runless=runless,
        )
    raise Conflict(
        f"compaction lost the publish race {policy.max_attempts} times; the next delivery will retry"
    )


def _already_applied(snap: Snapshot, hint: Sequence[str]) -> CompactionResult | None:
    """The result of a compaction whose hinted objects ``snap`` already shows applied, else None."""
    if hint and ledger.all_applied(hint, snap.cache.applied.view()):
        return CompactionResult.unchanged(snap, [])
    return None


def _interval_left_ms(snap: Snapshot, scope: _Scope) -> int:
    """How long until ``snap``'s head may be replaced (GCS: about one update of an object a second)."""
    if not scope.policy.min_publish_interval_ms or snap.pointer is None:
        return 0
    return snap.pointer.updated_at + scope.policy.min_publish_interval_ms - scope.now_ms


def _unapplied(
    snap: Snapshot, stored: list[Event | EncodedEvent]
) -> tuple[list[Event | EncodedEvent], dict[str, RunPartition | None]]:
    """The events whose run partition does not hold them yet (oldest first, as found: with their
    writer's bytes where known), and those partitions as published."""
    before: dict[str, RunPartition | None] = {}
    fresh: dict[str, Event | EncodedEvent] = {}
    touched: set[str] = set()
    for value in stored:
        event = as_event(value)
        run_id = event.run_id
        if run_id is None:
            continue  # run-less events belong to the M2 automation state
        if run_id not in before:
            before[run_id] = snap.partition(run_id, events=True)
        part = before[run_id]
        if part is None or not (event.event_id in part.events or superseded(part, event)):
            fresh[event.event_id] = value
            touched.add(run_id)
    return [fresh[i] for i in sorted(fresh)], {r: p for r, p in before.items() if r in touched}


def _publish(
    scope: _Scope,
    snap: Snapshot,
    fresh: list[Event | EncodedEvent],
    before: dict[str, RunPartition | None],
    found: ledger.Found,
) -> tuple[Snapshot, list[str]] | None:
    state = FoldState(scope.tenant_id, scope.workspace_id, {r: p for r, p in before.items() if p is not None})
    # The events this process wrote come with their bytes, which the fold keeps: the segment
    # stores them as written, and encodes only the events read from the ledger.
    after = fold(state, fresh)
    manifest = snap.manifest
    live = dict(manifest.live)
    segments: dict[str, tuple[Segment, tuple[str, ...]]] = {}
    for run_id in sorted(before):
        new = after.runs[run_id]
        old = before[run_id]
        current = snap.index_entry(run_id)
        chain = current.segments if current is not None else ()
        if old is None or len(chain) >= MAX_CHAIN:
            segment, chain = full_segment(new, event_body), ()
        else:
            segment = diff_segment(old, new, event_body)
        if not segment.is_empty:
            segments[run_id] = (segment, chain)
    paths: dict[str, str] = {}
    for group in file_groups(segment for segment, _ in segments.values()):
        data = encode_segments(group)
        path = layout.segments_path(data)
        _put_immutable(scope.store, path, data)
        paths.update((segment.run_id, path) for segment in group)
    for run_id, (segment, chain) in segments.items():
        new = after.runs[run_id]
        chain = (*chain, paths[run_id])
        _cache_partition(snap, chain, new, segment.events)
        public = public_run_state(new.run, new.tasks.values()) if new.run is not None else None
        live[run_id] = layout.IndexEntry(run_id, new.run, chain, public)
    by_bucket: dict[str, dict[str, layout.IndexEntry]] = {}
    ended = [run_id for run_id, e in live.items() if is_terminal_public(e.public_state)]
    if len(ended) >= scope.policy.ended_per_index_write:
        for run_id in ended:
            by_bucket.setdefault(layout.bucket_of(run_id), {})[run_id] = live.pop(run_id)
    buckets = dict(manifest.buckets)
    for bucket, entries in by_bucket.items():
        buckets[bucket] = _append_to_bucket(scope.store, snap, bucket, entries)
    watermark = ledger.advance(manifest.events_processed_through, found.seen_ids, scope.now_ms)
    recent = ledger.recent_ids({*manifest.recent_event_ids, *found.seen_ids}, watermark)
    new_snap = _commit(scope, snap, _Draft(buckets, watermark, recent, live))
    return None if new_snap is None else (new_snap, list(segments))


def _append_to_bucket(
    store: ObjectStore, snap: Snapshot, bucket: str, entries: dict[str, layout.IndexEntry]
) -> layout.BucketRef:
    """``bucket`` with ``entries`` added as a new file, which first absorbs the trailing files no
    bigger than it (layout.BucketRef says why)."""
    ref = snap.manifest.buckets.get(bucket)
    files = list(ref.files) if ref is not None else []
    tops = [ref.max_triggered_at] if ref is not None and ref.max_triggered_at is not None else []
    tops += [e.run.triggered_at for e in entries.values() if e.run is not None]
    while (
        files
        and files[-1].run_count <= len(entries)
        and files[-1].run_count + len(entries) <= layout.MAX_BUCKET_FILE_RUNS
    ):
        entries = {**snap.index_file(files.pop().file.path), **entries}
    data = layout.encode_index(list(entries.values()))
    written = _put_immutable(store, layout.index_path(bucket, content_hex12(data)), data)
    snap.cache.files.put(("index", written.path), entries)
    files.append(layout.BucketFile(written, len(entries)))
    return layout.BucketRef(tuple(files), max(tops, default=None))


def _commit(scope: _Scope, snap: Snapshot, draft: _Draft) -> Snapshot | None:
    """Move the head, holding the new manifest, by CAS; None when another publish came first."""
    store, previous = scope.store, snap.manifest
    published_at = scope.now_ms
    if snap.pointer is not None:
        published_at = max(scope.now_ms, snap.pointer.updated_at + scope.policy.min_publish_interval_ms)
    number = previous.manifest_id + 1
    manifest = layout.Manifest(
        number,
        previous.epoch,
        snap.pointer.manifest_path if snap.pointer and not snap.pointer.holds_manifest else None,
        published_at,
        draft.watermark,
        draft.recent,
        draft.buckets,
        draft.live,
        UlidFactory(os.urandom).new(published_at),
    )
    pointer = layout.Pointer(
        number,
        layout.POINTER_PATH,
        manifest.epoch,
        layout.pointer_hash(snap.pointer_raw) if snap.pointer is not None else None,
        published_at,
    )
    pointer_raw = layout.encode_head(pointer, manifest)
    try:
        generation = store.put(layout.POINTER_PATH, pointer_raw, if_generation_match=snap.generation)
    except PreconditionFailed:
        # A lost answer to a CAS that landed looks like a lost race to the client's retry. The head's
        # bytes hold this attempt's revision_ulid, so equal bytes mean the publish is ours.
        head = store.get(layout.POINTER_PATH)
        if head is None or head.data != pointer_raw:
            return None
        generation = head.generation
    snap.cache.remember_head((generation, pointer, pointer_raw, manifest))
    return Snapshot(store, generation, pointer, pointer_raw, manifest, snap.cache)


def rebuild(
    store: ObjectStore, *, tenant_id: str, workspace_id: str
) -> tuple[FoldState, list[tuple[str, str]]]:
    """Fold the whole ledger from nothing, in ULID order (the reference the live projection must equal).

    Returns the state and the malformed objects skipped. Reads every ledger object: for checks and
    disaster recovery, never on the hot path.
    """
    names = [m.name for m in store.list(ledger.LEDGER_PREFIX)]
    found = ledger.read_events(store, names, tenant_id, workspace_id)
    ordered: list[Event] = sorted(found.events, key=lambda e: e.event_id)
    state = fold(FoldState(tenant_id, workspace_id), ordered)
    return state, sorted(found.malformed.items())


def load_published_state(store: ObjectStore, *, tenant_id: str, workspace_id: str) -> FoldState:
    """The whole published projection as a FoldState (events included), for comparison with rebuild."""
    return load_snapshot(store).load_state(tenant_id, workspace_id)
