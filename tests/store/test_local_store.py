"""LocalFileStore specifics the contract cannot see: on-disk hygiene, torn reads, generation memory."""

from __future__ import annotations

import errno
import fcntl
import multiprocessing
import os
import threading
import zlib
from pathlib import Path
from unittest import mock

import pytest
from servo.core.errors import InvalidId, PreconditionFailed
from servo.store import LocalFileStore, StoredObject, local


def test_each_object_is_a_plain_file_at_its_name(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    store.create("ledger/e1.json", b'{"a": 1}')
    store.put("ledger/e1.json", b'{"a": 2}', if_generation_match=None)
    # Anyone (jq, pyarrow, DuckDB) reads the object as it was written: no header, no suffix.
    assert (tmp_path / "ledger" / "e1.json").read_bytes() == b'{"a": 2}'
    assert sorted(p.name for p in (tmp_path / "ledger").iterdir()) == ["e1.json"]
    # Generations and locks live aside, in one hidden tree no object name can reach ('%' is refused).
    assert sorted(p.name for p in tmp_path.iterdir()) == [".servo%", "ledger"]


def test_list_hides_the_side_tree_and_leftover_temp_files(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    store.create("ledger/e1.json", b"1")
    # A writer that crashed between writing its temp file and renaming it leaves one behind in the side tree.
    (tmp_path / ".servo%" / "tmp").mkdir(parents=True, exist_ok=True)
    (tmp_path / ".servo%" / "tmp" / "0123456789abcdef").write_bytes(b"partial")
    assert [m.name for m in store.list("")] == ["ledger/e1.json"]
    assert store.get("ledger/e2.json") is None


def test_generation_is_the_files_modification_time_in_microseconds(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    gen = store.create("x.json", b"{}")
    assert (tmp_path / "x.json").stat().st_mtime_ns == gen * 1000
    # An edit by hand is a new generation, as an upload would be on GCS.
    os.utime(tmp_path / "x.json", ns=(0, (gen + 5) * 1000))
    assert store.get("x.json") == StoredObject("x.json", b"{}", gen + 5)
    with pytest.raises(PreconditionFailed):
        store.put("x.json", b"[]", if_generation_match=gen)


def test_an_object_whose_name_becomes_a_folder_keeps_its_bytes_and_generation(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    g1 = store.create("a", b"file")
    g2 = store.create("a/b", b"child")
    assert (tmp_path / "a" / "b").read_bytes() == b"child"
    assert store.get("a") == StoredObject("a", b"file", g1)
    g3 = store.put("a", b"file2", if_generation_match=g1)
    assert g3 > g2
    assert [(m.name, m.generation) for m in store.list("")] == [("a", g3), ("a/b", g2)]


def test_writes_keep_no_side_file_per_object(tmp_path: Path) -> None:
    # A lock file per object cost a file creation per object written: writers share a fixed set.
    store = LocalFileStore(tmp_path, durable=False)
    for i in range(local.LOCK_STRIPES + 100):
        store.create(f"ledger/{i:04d}.json", b"{}")
    side = [p for p in (tmp_path / ".servo%").rglob("*") if p.is_file()]
    assert 0 < len(side) <= local.LOCK_STRIPES


def test_a_new_object_is_linked_into_place_without_a_named_temp_file(tmp_path: Path) -> None:
    # A named temp file and a rename out of the shared temp folder are two more directory changes,
    # the rename across folders taking the file system's rename lock: 30-35 % of a create's CPU with
    # concurrent writers (issue 21). An unnamed file (O_TMPFILE) is linked at the name once written.
    store = LocalFileStore(tmp_path)
    gen = store.create("ledger/e1.json", b'{"a": 1}')
    store.create("a", b"file")
    assert not (tmp_path / ".servo%" / "tmp").exists()
    assert store.get("ledger/e1.json") == StoredObject("ledger/e1.json", b'{"a": 1}', gen)
    assert (tmp_path / "ledger" / "e1.json").stat().st_mtime_ns == gen * 1000
    with pytest.raises(PreconditionFailed):
        store.create("ledger/e1.json", b"other")
    assert (tmp_path / "ledger" / "e1.json").read_bytes() == b'{"a": 1}'
    # A replacement still goes through a rename; a name made a folder, deleted and created again too.
    store.put("a", b"file2", if_generation_match=None)
    store.create("a/b", b"child")
    assert store.get("a") is not None and store.get("a").data == b"file2"  # type: ignore[union-attr]
    store.delete("ledger/e1.json")
    assert store.create("ledger/e1.json", b"again") > gen


def test_a_name_and_its_folder_sharing_a_lock_stripe_do_not_deadlock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "LOCK_STRIPES", 1)
    store = LocalFileStore(tmp_path, durable=False)
    store.create("a", b"object a")
    # Writing a/b turns the folder a into a directory under a's lock, while a/b's write is pending.
    writer = threading.Thread(target=store.create, args=("a/b", b"object a/b"), daemon=True)
    writer.start()
    writer.join(timeout=10)
    assert not writer.is_alive(), "the write of a/b waits on a lock its own writer holds"
    assert (store.get("a") or _absent()).data == b"object a"
    assert (store.get("a/b") or _absent()).data == b"object a/b"


def _absent() -> StoredObject:
    raise AssertionError("object missing")


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


def test_objects_of_the_first_layout_are_upgraded_to_plain_files(tmp_path: Path) -> None:
    from servo.store.local import upgrade_legacy_layout

    # The first layout: ROOT/name%o = b"SVO1" + 8-byte generation + bytes, a %l lock file beside it.
    legacy = tmp_path / "ledger" / "e1.json%o"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"SVO1" + (7).to_bytes(8, "big") + b'{"event": 1}')
    (tmp_path / "ledger" / "e1.json%l").write_bytes((7).to_bytes(8, "big"))
    (tmp_path / "ledger" / "e2.json%t0123456789abcdef").write_bytes(b"partial")
    assert upgrade_legacy_layout(tmp_path) == 1
    store = LocalFileStore(tmp_path)
    got = store.get("ledger/e1.json")
    assert got is not None and got.data == b'{"event": 1}' and got.generation > 7
    assert sorted(p.name for p in (tmp_path / "ledger").iterdir()) == ["e1.json"]
    assert upgrade_legacy_layout(tmp_path) == 0  # nothing left to do


def test_a_dangling_link_at_a_new_objects_name_is_replaced_as_a_rename_would(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    store.create("ledger/e0.json", b"{}")
    (tmp_path / "ledger" / "e1.json").symlink_to(tmp_path / "nowhere")
    gen = store.create("ledger/e1.json", b"{}")
    assert store.get("ledger/e1.json") == StoredObject("ledger/e1.json", b"{}", gen)
    assert not (tmp_path / "ledger" / "e1.json").is_symlink()


_SYSTEM_CALLS = ("open", "close", "read", "pread", "write", "pwrite", "fstat", "stat", "getpid", "lseek")


@pytest.fixture
def system_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The os functions the store calls (each one system call), in order; builtins.open is refused."""
    calls: list[str] = []
    for name in _SYSTEM_CALLS:
        real = getattr(os, name)

        def counted(*args: object, __real: object = real, __name: str = name, **kwargs: object) -> object:
            calls.append(__name)
            return __real(*args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(os, name, counted)

    def refused(*args: object, **kwargs: object) -> object:
        raise AssertionError("builtins.open: a buffered file costs an isatty, a seek and a stat more")

    monkeypatch.setattr(local, "open", refused, raising=False)
    return calls


def test_a_get_is_one_open_one_stat_one_read_and_one_close(tmp_path: Path, system_calls: list[str]) -> None:
    # Every ledger event read is a get: a buffered file object asked the kernel for an isatty, a seek,
    # a second stat and a second read besides.
    store = LocalFileStore(tmp_path, durable=False)
    gen = store.create("ledger/e1.json", b'{"a": 1}')
    system_calls.clear()
    assert store.get("ledger/e1.json") == StoredObject("ledger/e1.json", b'{"a": 1}', gen)
    assert system_calls == ["open", "fstat", "read", "close"]
    system_calls.clear()
    assert store.get("ledger/e2.json") is None
    assert system_calls == ["open", "open"]  # the plain path, then the shadow tree


def test_a_get_of_a_big_object_reads_it_whole(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path, durable=False)
    data = os.urandom(3 << 20)
    gen = store.create("projections/big.parquet", data)
    assert store.get("projections/big.parquet") == StoredObject("projections/big.parquet", data, gen)


def test_writes_keep_their_stripes_lock_file_open(tmp_path: Path, system_calls: list[str]) -> None:
    # Opening and closing the stripe's lock file was two of a create's twelve system calls; the
    # descriptor is kept for the next write under that stripe (and the process id is not asked).
    store = LocalFileStore(tmp_path, durable=False)
    store.create("ledger/e1.json", b"{}")
    store.put("ledger/e1.json", b'{"b": 1}', if_generation_match=None)  # makes the temp folder
    system_calls.clear()
    store.put("ledger/e1.json", b'{"b": 2}', if_generation_match=None)
    assert system_calls.count("open") == system_calls.count("close") == 1  # the named temp file
    system_calls.clear()
    other = next(n for i in range(10_000) if _stripe(n := f"ledger/n{i}.json") == _stripe("ledger/e1.json"))
    store.create(other, b"{}")
    assert system_calls.count("open") == system_calls.count("close") == 1  # the unnamed file
    assert "getpid" not in system_calls


def _stripe(name: str) -> int:
    return zlib.crc32(name.encode("utf-8")) % local.LOCK_STRIPES


def test_a_forked_child_does_not_share_its_parents_lock_descriptors(tmp_path: Path) -> None:
    # flock belongs to an open file description, and a forked child inherits its parent's: a lock
    # descriptor kept from before the fork would not keep the child's writers and the parent's apart.
    ctx = multiprocessing.get_context("fork")
    store = LocalFileStore(tmp_path, durable=False)
    store.create("ledger/e1.json", b"{}")
    with store._locked(["ledger", "e1.json"]) as parent_fd:
        pass
    held, release = ctx.Event(), ctx.Event()

    def child() -> None:
        with store._locked(["ledger", "e1.json"]):
            held.set()
            release.wait(30)

    proc = ctx.Process(target=child)
    proc.start()
    try:
        assert held.wait(30)
        with pytest.raises(BlockingIOError):
            fcntl.flock(parent_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        release.set()
        proc.join(30)
    assert proc.exitcode == 0


def test_a_create_does_not_look_before_it_links(tmp_path: Path, system_calls: list[str]) -> None:
    # The link fails on any name already taken, so a stat of the name first was a system call for
    # nothing on every new object; a taken name is looked at only once the link has failed.
    store = LocalFileStore(tmp_path, durable=False)
    store.create("ledger/e1.json", b"{}")
    system_calls.clear()
    store.create("ledger/e2.json", b"{}")
    assert "stat" not in system_calls
    with pytest.raises(PreconditionFailed):
        store.put("ledger/e2.json", b"other", if_generation_match=0)
    assert (tmp_path / "ledger" / "e2.json").read_bytes() == b"{}"
    store.create("a", b"object a")
    store.create("a/b", b"object a/b")  # the object a moves to the shadow tree
    with pytest.raises(PreconditionFailed):
        store.create("a", b"other")
    assert (store.get("a") or _absent()).data == b"object a"


def test_a_system_without_unnamed_files_still_refuses_a_taken_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first create finds out the file system cannot: it must look at the name before it takes
    # the named temp file and rename, which would replace whatever stands there.
    LocalFileStore(tmp_path, durable=False).create("ledger/e1.json", b"first")
    real_open = os.open

    def no_unnamed_files(path: str, flags: int, *args: int, **kwargs: object) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "no O_TMPFILE here")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_unnamed_files)
    store = LocalFileStore(tmp_path, durable=False)
    with pytest.raises(PreconditionFailed):
        store.create("ledger/e1.json", b"second")
    assert (tmp_path / "ledger" / "e1.json").read_bytes() == b"first"
    store.create("ledger/e2.json", b"new")
    assert (store.get("ledger/e2.json") or _absent()).data == b"new"


def test_only_a_delete_leaves_its_generation_in_the_stripes_lock_file(
    tmp_path: Path, system_calls: list[str]
) -> None:
    # A live object's generation is its file's: the lock file need only remember the generation of an
    # object that is gone, so that a re-created one is newer. Recording every write cost a system call.
    store = LocalFileStore(tmp_path, durable=False)
    first = store.create("ledger/e1.json", b"{}")
    second = store.put("ledger/e1.json", b"{}", if_generation_match=first)
    assert system_calls.count("pwrite") == 0
    store.delete("ledger/e1.json")
    assert system_calls.count("pwrite") == 1
    with mock.patch.object(local.time, "time_ns", return_value=0):  # a clock set back
        assert store.create("ledger/e1.json", b"again") > second


def _open_lock_files() -> int:
    fds = os.listdir("/proc/self/fd")
    return sum(".servo%/locks/" in _target(fd) for fd in fds)


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def test_a_process_keeps_at_most_one_stores_worth_of_lock_files_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stores left to the garbage collector (a service context in a reference cycle) must not each
    # hold up to LOCK_STRIPES descriptors: a test session reached 1,769 open files that way.
    monkeypatch.setattr(local, "LOCK_STRIPES", 16)
    stores = [LocalFileStore(tmp_path / f"root{r}", durable=False) for r in range(3)]
    for store in stores:
        for i in range(local.LOCK_STRIPES * 3):
            store.create(f"ledger/{i:05d}.json", b"{}")
    assert _open_lock_files() <= local.LOCK_STRIPES
    for store in stores:  # and every store still writes and keeps its objects
        store.create("ledger/last.json", b"{}")
        assert len(store.list("ledger/")) == local.LOCK_STRIPES * 3 + 1
