"""Compaction on the local file store: the six properties of design §5 that do not need GCS."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servo.core.canonical_json import canonical_bytes
from servo.core.events import encode_event, ledger_object_name
from servo.core.ids import UlidFactory, ulid_time_ms
from servo.projections import layout
from servo.projections.partitions import MAX_CHAIN, SHARED_SEGMENT_MAX_ROWS, decode_segments
from servo.services.compaction import (
    CompactionPolicy,
    CompactionResult,
    compact,
    load_published_state,
    rebuild,
)
from servo.services.read_model import load_snapshot
from servo.store import CountingStore, LocalFileStore, ObjectStore

from tests.core.test_fold import T0, TENANT, WS, History, start_tasks
from tests.services.compaction_support import (
    NOW,
    RUNS,
    Crash,
    CrashingStore,
    SpyStore,
    clean_fold,
    histories,
    simple_history,
    view,
    write,
)


def run(store: ObjectStore, hint: list[str] | tuple[str, ...] = (), **kw: Any) -> CompactionResult:
    """A compaction at NOW; keywords naming a CompactionPolicy field set the policy."""
    policy = {k: kw.pop(k) for k in list(kw) if k in CompactionPolicy.__dataclass_fields__}
    return compact(
        store,
        tenant_id=TENANT,
        workspace_id=WS,
        hint=hint,
        now_ms=NOW,
        policy=CompactionPolicy(**policy),
        **kw,
    )


@pytest.fixture
def store(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path / "ws")


def test_first_compaction_publishes_everything(store: LocalFileStore) -> None:
    events = simple_history()
    write(store, events)
    result = run(store)
    assert result.published and result.events_applied == len(events) and result.malformed == []
    assert result.changed_run_ids == [RUNS[0]]
    assert result.manifest_id == 1
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))
    again = run(store)
    assert not again.published and again.events_applied == 0 and again.manifest_id == 1


def test_pointer_chain_is_linked_and_artifacts_are_never_rewritten(store: LocalFileStore) -> None:
    events = simple_history()
    write(store, events[:2])
    run(store)
    first = store.get(layout.POINTER_PATH)
    assert first is not None
    files = {m.name: m.generation for m in store.list("state/")}
    write(store, events[2:])
    run(store)
    pointer = layout.Pointer.decode(store.get(layout.POINTER_PATH).data)  # type: ignore[union-attr]
    assert pointer.manifest_id == 2 and pointer.parent_pointer_hash == layout.pointer_hash(first.data)
    after = {m.name: m.generation for m in store.list("state/")}
    assert all(after[n] == g for n, g in files.items() if n != layout.POINTER_PATH)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_any_order_duplication_and_batching_equals_one_clean_fold(
    tmp_path: Path, data: st.DataObject
) -> None:
    events = histories(data)
    store = LocalFileStore(Path(tempfile.mkdtemp(dir=tmp_path)))  # a fresh store per example
    order = data.draw(st.permutations(events), label="write order")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(order)), max_size=5), label="cuts"))
    for lo, hi in zip([0, *cuts], [*cuts, len(order)], strict=True):
        names = write(store, order[lo:hi])
        redelivered = data.draw(st.lists(st.sampled_from(names), max_size=3), label="dup") if names else []
        for hint in (names, redelivered):
            run(store, hint)
    live = load_published_state(store, tenant_id=TENANT, workspace_id=WS)
    assert view(live) == view(clean_fold(events))
    rebuilt, malformed = rebuild(store, tenant_id=TENANT, workspace_id=WS)
    assert malformed == [] and view(rebuilt) == view(live)


def test_late_event_with_older_ulid_is_found_by_the_lookback_window_and_refolds_its_run(
    store: LocalFileStore,
) -> None:
    events = simple_history()
    late = events[3]  # an event some writer with a slow clock uploads last
    write(store, [e for e in events if e is not late])
    run(store)
    write(store, [late])
    result = run(store, lookback_ms=3_600_000)  # no hint: the finalize event was lost
    assert result.events_applied == 1
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))


def test_late_events_handed_over_by_riders_are_folded_by_the_leader(store: LocalFileStore) -> None:
    # A controller pass writing a big batch takes seconds, and its ids are from its start: by the
    # time its last objects land they can be older than the listing window. Their own compactions,
    # riding the leader's flight, hand their names over instead of each waiting for a publish.
    events = simple_history()
    late = events[1:3]
    write(store, [e for e in events if e not in late])
    run(store, lookback_ms=0)
    names = write(store, late)
    result = run(store, lookback_ms=0, more_hint=lambda: names)
    assert result.events_applied == len(late)
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))


def test_late_event_before_the_window_is_found_by_its_hint(store: LocalFileStore) -> None:
    events = simple_history()
    late = events[2]
    write(store, [e for e in events if e is not late])
    run(store, lookback_ms=0)
    names = write(store, [late])
    assert run(store, lookback_ms=0).events_applied == 0  # out of the window, not hinted
    assert run(store, names, lookback_ms=0).events_applied == 1
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))


def test_a_hint_only_compaction_folds_its_hints_without_listing(store: LocalFileStore) -> None:
    # The embedded stack hands over every object it wrote, so it needs no list; GCP's finalize-driven
    # compactor lists to batch and to find objects whose event was lost.
    events = simple_history()
    names = write(store, events[:2])
    write(store, events[2:])
    counting = CountingStore(store)
    result = run(counting, names, list_ledger=False)
    assert result.events_applied == 2 and counting.snapshot().lists == 0
    assert run(store).events_applied == len(events) - 2


# An active run's batch writes segment and pointer (holding the manifest); a batch that moves ended
# runs (here every run, at once) also their index bucket.
@pytest.mark.parametrize(("ends_run", "crash_at"), [(False, 1), (False, 2), (True, 1), (True, 2), (True, 3)])
def test_a_crash_before_any_write_loses_and_doubles_nothing(
    store: LocalFileStore, ends_run: bool, crash_at: int
) -> None:
    events = simple_history(1) if ends_run else simple_history()
    write(store, events[:3])
    run(store, ended_per_index_write=1)
    names = write(store, events[3:])
    with pytest.raises(Crash):
        run(CrashingStore(store, crash_at), names, ended_per_index_write=1)
    run(store, names, ended_per_index_write=1)
    run(store, names, ended_per_index_write=1)
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))


def test_a_publish_writes_its_manifest_inside_the_head(store: LocalFileStore) -> None:
    # Issue 21: one object fewer a publish. The pointer names itself as the manifest's path.
    events = simple_history()
    write(store, events[:2])
    run(store)
    write(store, events[2:])
    result = run(store)
    assert result.published and result.manifest_id == 2
    assert store.list("state/orchestration/manifests/") == []
    pointer, manifest = layout.decode_head(store.get(layout.POINTER_PATH).data)  # type: ignore[union-attr]
    assert pointer.manifest_path == layout.POINTER_PATH and manifest is not None
    assert manifest.manifest_id == pointer.manifest_id == 2
    # A cold reader gets the whole snapshot from that one object.
    counting = CountingStore(store)
    snap = load_snapshot(counting)
    assert snap.manifest == manifest and counting.snapshot().reads == 1


def test_a_head_published_before_the_pointer_held_its_manifest_is_read_and_built_on(
    store: LocalFileStore,
) -> None:
    events = simple_history()
    write(store, events[:2])
    run(store)
    # Rewrite the head as it was published before: a manifest object, and a pointer naming it.
    head = store.get(layout.POINTER_PATH)
    assert head is not None
    pointer, manifest = layout.decode_head(head.data)
    assert manifest is not None
    store.create(layout.manifest_path(1), manifest.encode())
    old = layout.Pointer(1, layout.manifest_path(1), pointer.epoch, None, pointer.updated_at)
    store.put(layout.POINTER_PATH, old.encode(), if_generation_match=head.generation)
    assert load_snapshot(store).manifest == manifest
    write(store, events[2:])
    result = run(store)
    assert result.published and result.manifest_id == 2
    assert layout.Pointer.decode(store.get(layout.POINTER_PATH).data).holds_manifest  # type: ignore[union-attr]
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))


def test_cas_loser_refolds_and_stops_when_its_events_are_applied(store: LocalFileStore) -> None:
    events = simple_history()
    write(store, events)
    stale = load_snapshot(store)
    run(store)

    class StaleFirst(CrashingStore):
        """Hands out the pre-publish pointer once, as if it had been read just before the winner's CAS."""

        served = False

        def get(self, name: str):  # type: ignore[no-untyped-def]
            if name == layout.POINTER_PATH and not self.served:
                self.served = True
                return None if stale.generation == 0 else self.inner.get(name)
            return self.inner.get(name)

    result = run(StaleFirst(store, None))
    assert not result.published and result.events_applied == 0
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))


def test_malformed_objects_are_reported_and_do_not_block(store: LocalFileStore) -> None:
    events = simple_history()
    write(store, events)
    foreign = History(run=RUNS[1], now=NOW).trigger()
    bad = {
        "01HZZZZZZZZZZZZZZZZZZZZBAD": b"{not json",
        "01HZZZZZZZZZZZZZZZZZZZZBAE": canonical_bytes({"event_id": "x"}),
        "01HZZZZZZZZZZZZZZZZZZZZBAF": encode_event(events[0]),  # name does not match the body's id
    }
    for eid, body in bad.items():
        store.create(ledger_object_name(eid), body)
    other = encode_event(foreign).replace(b'"acme"', b'"other"').replace(b"acme/prod", b"other/prod")
    store.create(ledger_object_name(foreign.event_id), other)
    result = run(store, ["ledger/orchestration/nonsense.json"])
    assert result.published and result.events_applied == len(events)
    reasons = dict(result.malformed)
    assert set(reasons) == {ledger_object_name(e) for e in bad} | {
        ledger_object_name(foreign.event_id),
        "ledger/orchestration/nonsense.json",
    }
    assert "foreign scope" in reasons[ledger_object_name(foreign.event_id)]
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))


def test_readers_never_touch_the_ledger(store: LocalFileStore) -> None:
    write(store, simple_history())
    run(store)
    spy = SpyStore(store)
    snap = load_snapshot(spy)
    found = snap.get_run(RUNS[0])
    assert found is not None and found.run is not None and len(found.tasks) == 3
    rows, _ = snap.list_runs(limit=10)
    assert [r.run_id for r in rows] == [RUNS[0]]
    assert spy.touched and not any(n.startswith("ledger") for n in spy.touched)
    assert load_snapshot(store).get_run("01HZZZZZZZZZZZZZZZZZZZZZZZ") is None


def test_publish_rate_limit_waits_instead_of_rewriting_the_head(store: LocalFileStore) -> None:
    events = simple_history()
    write(store, events[:2])
    run(store)
    write(store, events[2:])
    waits: list[float] = []
    result = run(store, min_publish_interval_ms=1000, sleep=waits.append)
    assert waits == [1.0] and result.published
    assert layout.Pointer.decode(store.get(layout.POINTER_PATH).data).updated_at == NOW + 1000  # type: ignore[union-attr]


def test_a_warm_compaction_waits_out_the_publish_interval_before_it_reads_the_head(
    store: LocalFileStore,
) -> None:
    # On GCS every publish waits for the previous one to be a second old. A warm instance knows when
    # the head it last saw was published, so it waits first and reads the head once, after the wait,
    # instead of once to learn it must wait and once more to see whether anything moved meanwhile.
    events = simple_history()
    write(store, events[:2])
    cache: dict[str, object] = {}
    run(store, cache=cache)
    write(store, events[2:])
    counting = CountingStore(store)
    heads: list[float] = []

    def sleep(seconds: float) -> None:
        heads.append(seconds)
        assert counting.snapshot().reads == 0  # nothing read before the wait

    result = run(counting, min_publish_interval_ms=1000, sleep=sleep, cache=cache)
    assert heads == [1.0] and result.published and result.events_applied == len(events) - 2
    pointer_reads = counting.snapshot().reads - len(events[2:])  # the rest are the new ledger objects
    assert pointer_reads == 1


def test_the_sole_publisher_folds_on_the_head_it_published_without_reading_it(store: LocalFileStore) -> None:
    # The embedded stack's group commit publishes every head of its workspace through one cache: the
    # head it published last is the head, and reading it back before each publish was a read (and
    # ten syscalls) a publish spent for nothing.
    events = simple_history()
    write(store, events[:2])
    cache: dict[str, object] = {}
    run(store, cache=cache, sole_publisher=True)
    names = write(store, events[2:])
    counting = CountingStore(store)
    result = run(counting, names, cache=cache, list_ledger=False, sole_publisher=True)
    assert result.published and result.events_applied == len(events) - 2
    assert counting.snapshot().reads == len(names)  # the new ledger objects, and no head
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))


def test_a_sole_publisher_whose_head_moved_after_all_loses_the_cas_and_folds_on_the_new_head(
    store: LocalFileStore,
) -> None:
    events = simple_history()
    assert len(events) >= 5
    write(store, events[:2])
    cache: dict[str, object] = {}
    run(store, cache=cache, sole_publisher=True)
    run(store, write(store, events[2:4]))  # someone else published meanwhile (a cold instance)
    result = run(store, write(store, events[4:]), cache=cache, list_ledger=False, sole_publisher=True)
    assert result.published and result.manifest_id == 3
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))


def test_a_redelivery_the_warm_head_already_shows_applied_reads_nothing(store: LocalFileStore) -> None:
    events = simple_history()
    names = write(store, events)
    cache: dict[str, object] = {}
    run(store, cache=cache)
    counting = CountingStore(store)
    waits: list[float] = []
    result = run(counting, names[-1:], min_publish_interval_ms=1000, sleep=waits.append, cache=cache)
    assert not result.published and waits == []
    assert counting.snapshot() == type(counting.snapshot())()  # no read, write or list at all


def test_a_batch_reads_its_ledger_objects_concurrently(store: LocalFileStore) -> None:
    # On GCS each read waits ~20-50 ms on the network: one after another, a fan-out's batch of
    # hundreds of objects held its publish for seconds.
    import threading

    from servo.services._compaction_ledger import read_events

    names = write(store, simple_history(6))
    together = threading.Barrier(4, timeout=10)
    arrivals = iter(range(len(names)))

    class Concurrent(CountingStore):
        def get(self, name: str):  # type: ignore[no-untyped-def]
            if next(arrivals) < 4:  # the first four reads must be in flight at once
                together.wait()
            return super().get(name)

    found = read_events(Concurrent(store), names, TENANT, WS)
    assert not together.broken and len(found.events) == len(names) and not found.malformed


def test_small_batch_on_a_big_run_writes_a_delta_and_chains_merge(store: LocalFileStore) -> None:
    h = History(run=RUNS[0])
    h.trigger()
    h.plan({f"a.t{i:04d}": [] for i in range(2000)})
    write(store, h.events)
    run(store)
    counting = CountingStore(store)
    for i in range(MAX_CHAIN + 1):
        write(store, [h.dispatch(f"a.t{i:04d}")])
        cache: dict[str, object] = {}
        run(counting if i == 0 else store, cache=cache)
    counts = counting.snapshot()
    assert counts.bytes_written < 50_000 and counts.bytes_read < 200_000  # 2,000 tasks: a delta, not the run
    snap = load_snapshot(store)
    chain = snap.index_entry(RUNS[0]).segments  # type: ignore[union-attr]
    assert len(chain) <= MAX_CHAIN and snap.segment(chain[0], RUNS[0]).base
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(h.events))


def test_a_batch_over_several_runs_writes_one_segment_file(store: LocalFileStore) -> None:
    # Under load one publish carries many runs: one segment file for all of them keeps a publish at
    # three writes whatever the number of runs, and the run segments' encoding cost at one file's.
    ids = UlidFactory(lambda n: bytes(n))
    histories = [History(run=r, ids=ids, now=NOW - 60_000 + i) for i, r in enumerate(RUNS)]
    for h in histories:
        h.trigger()
        h.plan({"a.t0": [], "a.t1": ["a.t0"]})
    write(store, [e for h in histories for e in h.events])
    run(store)
    for h in histories:
        h.run_task("a.t0")
    write(store, [e for h in histories for e in h.events])
    counting = CountingStore(store)
    result = run(counting)
    assert sorted(result.changed_run_ids) == sorted(RUNS)
    assert counting.snapshot().writes == 2  # the runs' segments, the pointer holding the manifest
    snap = load_snapshot(store)
    chains = {r: snap.index_entry(r).segments for r in RUNS}  # type: ignore[union-attr]
    assert len({c[-1] for c in chains.values()}) == 1
    events = [e for h in histories for e in h.events]
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))
    # A cold reader reads the shared file once for all of its runs.
    cold = CountingStore(store)
    snap = load_snapshot(cold)
    before = cold.snapshot().reads
    assert all(snap.get_run(r) is not None for r in RUNS)
    assert cold.snapshot().reads - before == 2  # the first publish's file, and the second's


def test_a_big_segment_gets_a_file_of_its_own(store: LocalFileStore) -> None:
    # A small run's reads must not pay for a big run's segment (a fan-out's base is rewritten every
    # few publishes): only small segments share a file.
    ids = UlidFactory(lambda n: bytes(n))
    big, small = History(run=RUNS[0], ids=ids), History(run=RUNS[1], ids=ids, now=NOW - 60_000)
    big.trigger()
    big.plan({f"a.t{i:04d}": [] for i in range(SHARED_SEGMENT_MAX_ROWS)})
    small.trigger()
    small.plan({"a.t0": []})
    write(store, big.events + small.events)
    counting = CountingStore(store)
    run(counting)
    assert counting.snapshot().writes == 3  # two segment files, the pointer holding the manifest
    snap = load_snapshot(store)
    (small_file,) = snap.index_entry(RUNS[1]).segments  # type: ignore[union-attr]
    (big_file,) = snap.index_entry(RUNS[0]).segments  # type: ignore[union-attr]
    assert small_file != big_file
    assert list(decode_segments(store.get(small_file).data)) == [RUNS[1]]  # type: ignore[union-attr]


def _files(store: LocalFileStore, prefix: str) -> list[str]:
    return [m.name for m in store.list(prefix)]


def _one_task_run(store: ObjectStore, run_id: str, ids: UlidFactory, **kw: object) -> History:
    h = History(run=run_id, ids=ids)
    h.trigger()
    h.plan({"a.t0": []})
    write(store, h.events)
    run(store, **kw)
    h.run_task("a.t0")
    write(store, h.events)
    run(store, **kw)
    return h


def test_an_active_run_lives_in_the_manifest_and_writes_no_index_file(store: LocalFileStore) -> None:
    # A publish that only moves an active run writes its segment, the manifest and the pointer.
    h = History(run=RUNS[0], ids=UlidFactory(lambda n: bytes(n)))
    h.trigger()
    h.plan({"a.t0": [], "a.t1": ["a.t0"]})
    h.run_task("a.t0")
    write(store, h.events)
    run(store)
    snap = load_snapshot(store)
    assert _files(store, "state/orchestration/index/") == []
    assert snap.manifest.active_run_ids == (RUNS[0],)
    rows, _ = snap.list_runs(limit=5)
    assert [(r.run_id, r.tasks_completed) for r in rows] == [(RUNS[0], 1)]
    assert snap.public_state(rows[0]) == "RUNNING"


def test_ended_runs_wait_in_the_manifest_and_reach_their_index_bucket_together(store: LocalFileStore) -> None:
    # A day's bucket holds every run of that day: rewriting it for each run that ends would make a
    # busy day's run ends cost the size of the day. Ended runs wait in the manifest (no longer
    # active, fully readable) until enough have ended to share one rewrite per bucket.
    ids = UlidFactory(lambda n: bytes(n))
    first = _one_task_run(store, RUNS[0], ids, ended_per_index_write=2)
    snap = load_snapshot(store)
    assert _files(store, "state/orchestration/index/") == []
    assert snap.manifest.active_run_ids == ()
    rows, _ = snap.list_runs(limit=5, state="SUCCEEDED")
    assert [r.run_id for r in rows] == [RUNS[0]]
    view_of_first = snap.get_run(RUNS[0])
    assert view_of_first is not None and view_of_first.run.state == "SUCCEEDED"
    second = _one_task_run(store, RUNS[1], ids, ended_per_index_write=2)
    snap = load_snapshot(store)
    # One rewrite per bucket the batch touches (these two ids fall in two buckets).
    assert len(_files(store, "state/orchestration/index/")) == len({layout.bucket_of(r) for r in RUNS[:2]})
    assert snap.manifest.live == {} and snap.manifest.active_run_ids == ()
    rows, _ = snap.list_runs(limit=5, state="SUCCEEDED")
    assert sorted(r.run_id for r in rows) == sorted(RUNS[:2])
    events = first.events + second.events
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))


def test_what_a_compaction_wrote_serves_the_next_read_without_reading_it_back(store: LocalFileStore) -> None:
    events = simple_history()
    write(store, events)
    cache: dict[str, object] = {}
    run(store, cache=cache)
    counting = CountingStore(store)
    snap = load_snapshot(counting, cache)
    assert snap.get_run(RUNS[0]) is not None and snap.list_runs(limit=5)[0]
    assert counting.snapshot().reads == 1  # the head pointer, to know it is still the head


def test_how_many_ended_runs_share_an_index_write_is_a_setting() -> None:
    from servo.settings import Settings

    assert Settings().ended_runs_per_index_write == 32
    assert Settings.from_env({"SERVO_ENDED_RUNS_PER_INDEX_WRITE": "4"}).ended_runs_per_index_write == 4


def test_the_sweep_reads_no_object_the_finalize_path_already_applied(store: LocalFileStore) -> None:
    # The sweep lists two minutes before the watermark every minute, to find objects whose finalize
    # event was lost. The ids applied in that span are in the manifest, so it reads none of them
    # again: otherwise every ledger object would be read about twice more, once per tick.
    from servo.services._compaction_ledger import SWEEP_LOOKBACK_MS

    h = History(run=RUNS[0], ids=UlidFactory(lambda n: bytes(n)))  # one event a second
    h.trigger()
    h.plan({f"a.t{i:02d}": [] for i in range(12)})
    for i in range(12):
        h.run_task(f"a.t{i:02d}")
    for event in h.events:
        run(store, write(store, [event]))  # the finalize path: one hinted object at a time
    assert ulid_time_ms(h.events[-1].event_id) - ulid_time_ms(h.events[0].event_id) > 30_000
    spy = SpyStore(store)
    assert run(spy, lookback_ms=SWEEP_LOOKBACK_MS).events_applied == 0
    assert [n for n in spy.touched if n.startswith("ledger/")] == ["ledger/orchestration/"]  # one list


def test_the_manifest_keeps_a_bounded_number_of_applied_ids(store: LocalFileStore) -> None:
    from servo.services import _compaction_ledger as ledger

    ids = UlidFactory(lambda n: bytes(n))
    newest = [ids.new(NOW + i) for i in range(ledger.MAX_RECENT_IDS + 10)]
    kept = ledger.recent_ids(newest, newest[-1])
    assert kept == tuple(newest[-ledger.MAX_RECENT_IDS :])


def test_an_instance_does_not_read_again_what_it_found_applied_past_the_manifests_cap(
    store: LocalFileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A burst of more applied ids than the manifest keeps: the sweep's window still lists them all,
    # and without a memory of its own an idle workspace's sweep read the excess again every tick.
    from servo.services import _compaction_ledger as ledger

    monkeypatch.setattr(ledger, "MAX_RECENT_IDS", 3)
    events = simple_history()
    write(store, events)
    publisher: dict[str, object] = {}
    assert run(store, cache=publisher).events_applied == len(events) > 3

    def ledger_reads(cache: dict[str, object]) -> list[str]:
        spy = SpyStore(store)
        assert run(spy, cache=cache, lookback_ms=ledger.SWEEP_LOOKBACK_MS).events_applied == 0
        return [n for n in spy.touched if n.startswith("ledger/") and n.endswith(".json")]

    assert ledger_reads(publisher) == []  # it applied them itself
    cold: dict[str, object] = {}
    assert len(ledger_reads(cold)) == len(events) - 3  # the excess, once, and found applied
    assert ledger_reads(cold) == []
    # Memory is no excuse to miss a new object: one more event is read and folded.
    extra = History(run=RUNS[1], ids=UlidFactory(lambda n: b"\x01" * n))
    extra.trigger()
    write(store, extra.events)
    assert run(store, cache=cold, lookback_ms=ledger.SWEEP_LOOKBACK_MS).events_applied == 1


class LostResponseStore(CrashingStore):
    """The head-pointer CAS lands, but its answer is lost and the client's retry gets 412."""

    def put(self, name: str, data: bytes, **kw: object) -> int:
        generation = self.inner.put(name, data, **kw)  # type: ignore[arg-type]
        if name == layout.POINTER_PATH:
            from servo.core.errors import PreconditionFailed

            raise PreconditionFailed(f"{name} generation changed (the retry of a write that landed)")
        return generation


def test_a_publish_whose_cas_answer_was_lost_is_recognised_as_its_own(store: LocalFileStore) -> None:
    """Issue 15 item 10: the caller must still act on the runs it changed (the controller pass)."""
    events = simple_history()
    write(store, events)
    result = run(LostResponseStore(store, None))
    assert result.published and result.changed_run_ids == [RUNS[0]]
    assert result.events_applied == len(events) and result.manifest_id == 1
    head = store.get(layout.POINTER_PATH)
    assert head is not None and result.snapshot.generation == head.generation
    assert run(store).events_applied == 0  # published once: nothing left to fold


def _heartbeat_history(store: ObjectStore, minutes: int, tasks: int = 5) -> tuple[int, int, int]:
    """Tasks heartbeating every 30 s, one compaction a minute; what the run's state then holds:
    (stored events, idempotency rows, size of its newest base segment)."""
    h = History(run=RUNS[0], ids=UlidFactory(lambda n: bytes(n)))
    keys = start_tasks(h, tasks)
    write(store, h.events)
    run(store)
    for _ in range(minutes):
        # As the callback writes them: each heartbeat's idempotency key holds its time.
        write(store, [h.heartbeat(k, heartbeat_at=h.now) for _ in range(2) for k in keys])
        run(store)
    part = load_published_state(store, tenant_id=TENANT, workspace_id=WS).runs[RUNS[0]]
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(h.events))
    chain = load_snapshot(store).manifest.live[RUNS[0]].segments
    bases = [decode_segments(store.get(p).data)[RUNS[0]] for p in chain]  # type: ignore[union-attr]
    return len(part.events), len(part.idempotency), [s.size for s in bases if s.base][-1]


def test_a_runs_stored_state_does_not_grow_with_its_heartbeat_history(tmp_path: Path) -> None:
    """Issue 15 item 1: a 2 h heartbeat history stores what a 10-minute one does (counts, not times;
    both are long enough for the run's base segment to be rewritten)."""
    short = _heartbeat_history(LocalFileStore(tmp_path / "short"), minutes=10)
    long = _heartbeat_history(LocalFileStore(tmp_path / "long"), minutes=120)
    assert short == long


def test_a_busy_days_run_ends_cost_index_writes_linear_in_its_runs(store: LocalFileStore) -> None:
    """Issue 15 item 11: moving ended runs into their day's bucket must not rewrite the whole day each
    time. Counted as index entries written, over every index file written: each run is written a
    bounded number of times (its batch's file, then at most one merge per size doubling)."""
    from math import ceil, log2

    ids = UlidFactory(lambda n: bytes(n))
    batch, runs = 4, 192
    history = []
    for b in range(runs // batch):
        for i in range(batch):
            h = History(run=ids.new(T0 + b * batch + i), ids=ids, now=T0 + b * batch + i)
            h.trigger()
            h.plan({"a.t0": []})
            h.run_task("a.t0")
            history += h.events
            write(store, h.events)
        run(store, ended_per_index_write=batch)
    assert {layout.bucket_of(e.run_id) for e in history} == {layout.bucket_of(history[0].run_id)}
    written = sum(
        len(layout.decode_index(store.get(name).data))  # type: ignore[union-attr]
        for name in _files(store, "state/orchestration/index/")
    )
    assert written <= runs * (1 + ceil(log2(layout.MAX_BUCKET_FILE_RUNS / batch)))
    snap = load_snapshot(store)
    assert snap.manifest.live == {}
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(history))
    page, _ = snap.list_runs(limit=runs + 1, state="SUCCEEDED")
    assert len(page) == runs


def test_a_runs_index_entry_is_its_buckets_newest_without_merging_the_bucket(store: LocalFileStore) -> None:
    # Callbacks of a run not published yet look it up on every call: the lookup reads the bucket's
    # files newest first instead of merging the whole day's entries, and agrees with the merge.
    ids = UlidFactory(lambda n: bytes(n))
    runs = [ids.new(NOW) for _ in range(3)]
    for run_id in runs:
        _one_task_run(store, run_id, ids, ended_per_index_write=1)
    snap = load_snapshot(store)
    (bucket,) = {layout.bucket_of(r) for r in runs}
    assert len(snap.manifest.buckets[bucket].files) > 1
    for run_id in runs:
        assert snap.index_entry(run_id) == snap.bucket(bucket)[run_id]
    assert snap.index_entry(ids.new(NOW)) is None
