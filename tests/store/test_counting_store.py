from __future__ import annotations

import threading
from pathlib import Path

import pytest
from servo.core.errors import PreconditionFailed
from servo.store import CountingStore, LocalFileStore, OpCounts


@pytest.fixture
def counting(tmp_path: Path) -> CountingStore:
    return CountingStore(LocalFileStore(tmp_path, durable=False))


def test_counts_each_kind_of_operation_and_bytes(counting: CountingStore) -> None:
    g = counting.create("a", b"12345")
    counting.put("a", b"123", if_generation_match=g)
    counting.get("a")
    counting.get("missing")
    counting.list("")
    counting.list("a", limit=1)
    counting.delete("a")
    assert counting.snapshot() == OpCounts(reads=2, writes=3, lists=2, bytes_read=3, bytes_written=8)


def test_failed_writes_still_count(counting: CountingStore) -> None:
    counting.create("a", b"x")
    with pytest.raises(PreconditionFailed):
        counting.create("a", b"yy")
    assert counting.snapshot() == OpCounts(writes=2, bytes_written=3)


def test_reset_and_snapshot_difference(counting: CountingStore) -> None:
    counting.create("a", b"x")
    before = counting.snapshot()
    counting.get("a")
    assert counting.snapshot() - before == OpCounts(reads=1, bytes_read=1)
    counting.reset()
    assert counting.snapshot() == OpCounts()


def test_snapshot_is_immutable(counting: CountingStore) -> None:
    snap = counting.snapshot()
    counting.create("a", b"x")
    assert snap == OpCounts()


def test_counts_are_exact_under_threads(counting: CountingStore) -> None:
    counting.create("a", b"abc")
    counting.reset()
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(200):
            counting.get("a")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counting.snapshot() == OpCounts(reads=1600, bytes_read=4800)
