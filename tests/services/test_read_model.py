"""The read model: GetRun/ListRuns over head -> manifest -> Parquet, never the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest
from servo.core.errors import InvalidInput
from servo.core.ids import UlidFactory
from servo.services.compaction import compact
from servo.services.read_model import load_snapshot
from servo.store import CountingStore, LocalFileStore

from tests.core.test_fold import T0, TENANT, WS, History
from tests.services.compaction_support import NOW, SpyStore, write


def _runs(store: LocalFileStore, n: int, day_ms: int = 0) -> list[str]:
    ids = UlidFactory(lambda k: bytes(k))
    run_ids = []
    for i in range(n):
        h = History(run=ids.new(T0 + i * day_ms + i), now=T0 + i * day_ms + i, ids=ids)
        h.trigger()
        h.plan({"a.x": []})
        if i % 2:
            h.run_task("a.x")
        write(store, h.events)
        run_ids.append(h.run)
    compact(store, tenant_id=TENANT, workspace_id=WS, now_ms=NOW + n * day_ms)
    return run_ids


def test_list_runs_pages_newest_first_with_a_cursor_and_state(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    run_ids = _runs(store, 7, day_ms=86_400_000 // 2)  # spread over several buckets
    snap = load_snapshot(store)
    seen, cursor = [], None
    while True:
        page, cursor = snap.list_runs(limit=3, cursor=cursor)
        seen += [r.run_id for r in page]
        if cursor is None:
            break
    assert seen == list(reversed(run_ids))
    done, _ = snap.list_runs(limit=10, state="SUCCEEDED")
    assert {r.run_id for r in done} == set(run_ids[1::2])
    assert all(snap.public_state(r) == "SUCCEEDED" for r in done)
    assert set(snap.active_run_ids()) == set(run_ids[0::2])
    with pytest.raises(InvalidInput):
        snap.list_runs(limit=0)


def test_empty_workspace_reads_as_empty(tmp_path: Path) -> None:
    snap = load_snapshot(LocalFileStore(tmp_path))
    assert snap.list_runs(limit=5) == ([], None) and snap.get_run("01HZZZZZZZZZZZZZZZZZZZRUNA") is None


def test_get_run_of_ten_thousand_tasks_reads_only_its_partition(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    _runs(store, 3)
    h = History(run="01HZZZZZZZZZZZZZZZZZZZBIGR", now=T0 + 99)
    h.trigger()
    h.plan({f"a.t{i:05d}": [] for i in range(10_000)})
    write(store, h.events)
    compact(store, tenant_id=TENANT, workspace_id=WS, now_ms=NOW)
    spy = SpyStore(store)
    counting = CountingStore(spy)
    found = load_snapshot(counting).get_run(h.run)
    assert found is not None and found.run is not None and len(found.tasks) == 10_000
    assert [t.task_key for t in found.tasks] == sorted(t.task_key for t in found.tasks)
    # the pointer (holding the manifest, where the run is live), one segment: no listing, no ledger,
    # no other run.
    assert counting.snapshot().reads == 2 and counting.snapshot().lists == 0
    assert not any(n.startswith("ledger") for n in spy.touched)


def test_an_instance_remembers_a_bounded_number_of_applied_ids_newest_kept() -> None:
    from servo.services._projection_cache import AppliedIds

    applied = AppliedIds(max_ids=3)
    applied.note(["a", "b"])
    applied.note(["c", "d"])
    known = applied.view()
    assert [i for i in "abcd" if i in known] == ["b", "c", "d"]


def test_a_reader_that_read_an_older_head_never_moves_the_remembered_head_back(tmp_path: Path) -> None:
    """Two request threads of one instance: the one that read generation 1 finishes after the one
    that published generation 2; the instance keeps the newer head (issue 15 item 7)."""
    from servo.services._projection_cache import ProjectionCache

    store = LocalFileStore(tmp_path)
    first_run = History(run="01HZZZZZZZZZZZZZZZZZZZRUNA", now=T0)
    first_run.trigger()
    write(store, first_run.events)
    cache: dict[str, object] = {}
    first = compact(store, tenant_id=TENANT, workspace_id=WS, now_ms=NOW, cache=cache).snapshot
    old = (first.generation, first.pointer, first.pointer_raw, first.manifest)
    h = History(run="01HZZZZZZZZZZZZZZZZZZZRUNB", now=T0 + 5)
    h.trigger()
    write(store, h.events)
    second = compact(store, tenant_id=TENANT, workspace_id=WS, now_ms=NOW + 1, cache=cache).snapshot
    assert second.generation > first.generation
    pc = cache["servo.projections"]
    assert isinstance(pc, ProjectionCache)
    pc.remember_head(old)  # the slow reader's late write
    assert pc.heads.head is not None and pc.heads.head[0] == second.generation
