"""LocalFileStore specifics the contract cannot see: on-disk hygiene, torn reads, generation memory."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from servo.core.errors import InvalidId, PreconditionFailed
from servo.store import LocalFileStore, StoredObject


def test_list_hides_lock_and_leftover_temp_files(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    store.create("ledger/e1.json", b"1")
    store.put("ledger/e1.json", b"2", if_generation_match=None)
    # A writer that crashed between writing its temp file and renaming it leaves this behind.
    (tmp_path / "ledger" / "e2.json%t0123456789abcdef").write_bytes(b"partial")
    on_disk = sorted(p.name for p in (tmp_path / "ledger").iterdir())
    assert on_disk == ["e1.json%l", "e1.json%o", "e2.json%t0123456789abcdef"]
    assert [m.name for m in store.list("")] == ["ledger/e1.json"]
    assert store.get("ledger/e2.json") is None


def test_generation_survives_delete_across_instances(tmp_path: Path) -> None:
    g1 = LocalFileStore(tmp_path).create("x", b"1")
    assert LocalFileStore(tmp_path).delete("x") is True
    g2 = LocalFileStore(tmp_path).create("x", b"2")
    assert g2 > g1
    with pytest.raises(PreconditionFailed):
        LocalFileStore(tmp_path).put("x", b"3", if_generation_match=g1)


def test_delete_with_stale_generation_keeps_object(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    g1 = store.create("x", b"1")
    g2 = store.put("x", b"2", if_generation_match=g1)
    with pytest.raises(PreconditionFailed):
        store.delete("x", if_generation_match=g1)
    assert store.get("x") == StoredObject("x", b"2", g2)
    assert store.delete("x", if_generation_match=g2) is True


def test_delete_of_missing_object_in_missing_folder(tmp_path: Path) -> None:
    assert LocalFileStore(tmp_path).delete("no/such/thing") is False
    assert not (tmp_path / "no").exists()


def test_segment_longer_than_a_file_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidId, match="between two '/'"):
        LocalFileStore(tmp_path).create("a/" + "x" * 231, b"x")


def test_readers_never_see_a_torn_object(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path, durable=False)
    size = 256 * 1024
    gen = store.create("big", b"0" * size)
    stop = threading.Event()
    seen: list[tuple[int, bytes]] = []

    def read() -> None:
        while not stop.is_set():
            got = store.get("big")
            assert got is not None
            seen.append((got.generation, got.data))

    reader = threading.Thread(target=read)
    reader.start()
    written = {gen: b"0"}
    try:
        for i in range(1, 30):
            fill = str(i % 10).encode()
            gen = store.put("big", fill * size, if_generation_match=gen)
            written[gen] = fill
    finally:
        stop.set()
        reader.join()
    assert seen
    for generation, data in seen:
        assert len(data) == size and data == written[generation] * size
