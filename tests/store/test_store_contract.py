"""One contract for every ObjectStore adapter (local files, fake-gcs-server, counting wrapper)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from servo.core.errors import InvalidId, InvalidInput, PreconditionFailed
from servo.store import ObjectMeta, ObjectStore, StoredObject


def test_get_of_missing_object_is_none(store: ObjectStore) -> None:
    assert store.get("ledger/nope.json") is None


def test_create_then_get_returns_bytes_and_generation(store: ObjectStore) -> None:
    gen = store.create("ledger/a.json", b'{"a":1}')
    assert gen > 0
    assert store.get("ledger/a.json") == StoredObject("ledger/a.json", b'{"a":1}', gen)


def test_empty_object_round_trips(store: ObjectStore) -> None:
    gen = store.create("empty", b"")
    assert store.get("empty") == StoredObject("empty", b"", gen)


def test_create_twice_fails_and_keeps_first_bytes(store: ObjectStore) -> None:
    gen = store.create("run_keys/k.json", b"first")
    with pytest.raises(PreconditionFailed):
        store.create("run_keys/k.json", b"second")
    assert store.get("run_keys/k.json") == StoredObject("run_keys/k.json", b"first", gen)


def test_cas_with_current_generation_succeeds(store: ObjectStore) -> None:
    g1 = store.create("head.json", b"v1")
    g2 = store.put("head.json", b"v2", if_generation_match=g1)
    assert g2 > g1
    assert store.get("head.json") == StoredObject("head.json", b"v2", g2)


def test_cas_with_stale_generation_fails_and_keeps_bytes(store: ObjectStore) -> None:
    g1 = store.create("head.json", b"v1")
    g2 = store.put("head.json", b"v2", if_generation_match=g1)
    with pytest.raises(PreconditionFailed):
        store.put("head.json", b"v3", if_generation_match=g1)
    assert store.get("head.json") == StoredObject("head.json", b"v2", g2)


def test_cas_on_missing_object_with_a_generation_fails(store: ObjectStore) -> None:
    with pytest.raises(PreconditionFailed):
        store.put("missing.json", b"x", if_generation_match=12345)
    assert store.get("missing.json") is None


def test_put_with_zero_creates_only_when_absent(store: ObjectStore) -> None:
    gen = store.put("p.json", b"one", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        store.put("p.json", b"two", if_generation_match=0)
    assert store.get("p.json") == StoredObject("p.json", b"one", gen)


def test_unconditional_put_overwrites(store: ObjectStore) -> None:
    g1 = store.put("u.json", b"one", if_generation_match=None)
    g2 = store.put("u.json", b"two", if_generation_match=None)
    assert g2 > g1
    assert store.get("u.json") == StoredObject("u.json", b"two", g2)


def test_generations_strictly_increase_across_writes_and_recreate(store: ObjectStore) -> None:
    gens = [store.create("g.json", b"0")]
    for i in range(1, 4):
        gens.append(store.put("g.json", str(i).encode(), if_generation_match=gens[-1]))
    assert store.delete("g.json") is True
    gens.append(store.create("g.json", b"again"))
    assert gens == sorted(gens) and len(set(gens)) == len(gens)


def _names(metas: list[ObjectMeta]) -> list[str]:
    return [m.name for m in metas]


@pytest.fixture
def listed(store: ObjectStore) -> ObjectStore:
    for name in ["a/x", "a/y/1", "a/y/2", "a/z", "a-b", "a/é", "ab", "b/1", "a/y0"]:
        store.create(name, name.encode())
    return store


def test_list_by_prefix_is_sorted_by_name(listed: ObjectStore) -> None:
    assert _names(listed.list("a/")) == ["a/x", "a/y/1", "a/y/2", "a/y0", "a/z", "a/é"]
    assert _names(listed.list("a")) == ["a-b", "a/x", "a/y/1", "a/y/2", "a/y0", "a/z", "a/é", "ab"]
    assert _names(listed.list("a/y")) == ["a/y/1", "a/y/2", "a/y0"]
    assert _names(listed.list("nothing/")) == []


def test_list_with_empty_prefix_lists_everything(listed: ObjectStore) -> None:
    assert _names(listed.list("")) == ["a-b", "a/x", "a/y/1", "a/y/2", "a/y0", "a/z", "a/é", "ab", "b/1"]


def test_list_reports_generation_and_size(listed: ObjectStore) -> None:
    (meta,) = listed.list("a/y/1")
    stored = listed.get("a/y/1")
    assert stored is not None
    assert meta == ObjectMeta("a/y/1", stored.generation, len(b"a/y/1"))


def test_list_start_offset_is_inclusive(listed: ObjectStore) -> None:
    assert _names(listed.list("a/", start_offset="a/y/2")) == ["a/y/2", "a/y0", "a/z", "a/é"]
    assert _names(listed.list("a/", start_offset="a/y/")) == ["a/y/1", "a/y/2", "a/y0", "a/z", "a/é"]


def test_list_end_offset_is_exclusive(listed: ObjectStore) -> None:
    assert _names(listed.list("a/", end_offset="a/y0")) == ["a/x", "a/y/1", "a/y/2"]
    assert _names(listed.list("a/", start_offset="a/y/1", end_offset="a/z")) == ["a/y/1", "a/y/2", "a/y0"]


def test_list_limit_takes_the_first_names(listed: ObjectStore) -> None:
    assert _names(listed.list("a/", limit=2)) == ["a/x", "a/y/1"]
    assert _names(listed.list("a/", start_offset="a/y0", limit=10)) == ["a/y0", "a/z", "a/é"]


def test_list_rejects_bad_limit(store: ObjectStore) -> None:
    with pytest.raises(InvalidInput):
        store.list("a/", limit=0)


def test_unicode_names(store: ObjectStore) -> None:
    names = ["logs/ünïcødé/attempt-1.log", "logs/日本/x", "logs/emoji-🚀", "logs/z"]
    for n in names:
        store.create(n, n.encode())
    for n in names:
        got = store.get(n)
        assert got is not None and got.data == n.encode()
    # UTF-8 byte order, as GCS sorts: ü (C3 BC) < 日 (E6 97 A5) < 🚀 (F0 ...); ASCII first.
    assert _names(store.list("logs/")) == sorted(names, key=lambda s: s.encode())


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/abs",
        "a/../b",
        "..",
        "a/./b",
        "a//b",
        "trailing/",
        "back\\slash",
        "pct%2F",
        "ctl\x00x",
        "ctl\nx",
        "del\x7fx",
        "x" * 1025,
        "é" * 513,
        "lone\ud800",
    ],
)
def test_invalid_names_are_rejected(store: ObjectStore, bad: str) -> None:
    with pytest.raises(InvalidId):
        store.get(bad)
    with pytest.raises(InvalidId):
        store.create(bad, b"x")
    with pytest.raises(InvalidId):
        store.put(bad, b"x", if_generation_match=None)
    with pytest.raises(InvalidId):
        store.delete(bad)


def test_longest_valid_name_is_accepted(store: ObjectStore) -> None:
    name = "/".join(["y" * 127] * 8)  # 8*127 + 7 = 1023 bytes
    gen = store.create(name, b"ok")
    assert store.get(name) == StoredObject(name, b"ok", gen)


def test_list_rejects_traversal_prefix(store: ObjectStore) -> None:
    with pytest.raises(InvalidId):
        store.list("../")
    with pytest.raises(InvalidId):
        store.list("/etc/")


def test_non_bytes_data_is_rejected(store: ObjectStore) -> None:
    with pytest.raises(InvalidInput):
        store.create("s.json", "text")  # type: ignore[arg-type]


def test_delete(store: ObjectStore) -> None:
    store.create("d/1", b"x")
    store.create("d/2", b"y")
    assert store.delete("d/1") is True
    assert store.get("d/1") is None
    assert store.delete("d/1") is False
    assert _names(store.list("d/")) == ["d/2"]


def _race(n: int, work: Callable[[int], None]) -> list[BaseException]:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_concurrent_create_if_absent_has_exactly_one_winner(store: ObjectStore) -> None:
    winners: list[int] = []

    def attempt(i: int) -> None:
        try:
            store.create("run_keys/race.json", f"racer-{i}".encode())
            winners.append(i)
        except PreconditionFailed:
            pass

    assert _race(16, attempt) == []
    assert len(winners) == 1
    got = store.get("run_keys/race.json")
    assert got is not None and got.data == f"racer-{winners[0]}".encode()


def increment(store: ObjectStore, name: str) -> int:
    """Add one to a counter object with compare-and-swap; return the number of lost rounds."""
    lost = 0
    while True:
        cur = store.get(name)
        value = int(cur.data) if cur else 0
        try:
            store.put(name, str(value + 1).encode(), if_generation_match=cur.generation if cur else 0)
            return lost
        except PreconditionFailed:
            lost += 1


def test_concurrent_cas_increments_are_never_lost(store: ObjectStore) -> None:
    per_thread = 5

    def work(_: int) -> None:
        for _ in range(per_thread):
            increment(store, "counter.json")

    assert _race(8, work) == []
    got = store.get("counter.json")
    assert got is not None and int(got.data) == 8 * per_thread


def test_object_and_folder_of_the_same_name_coexist(store: ObjectStore) -> None:
    g1 = store.create("a", b"file")
    g2 = store.create("a/b", b"child")
    assert store.get("a") == StoredObject("a", b"file", g1)
    assert store.get("a/b") == StoredObject("a/b", b"child", g2)
    assert _names(store.list("a")) == ["a", "a/b"]


def test_create_once_is_idempotent_for_the_same_bytes_and_refuses_others(store: ObjectStore) -> None:
    from servo.store import create_once

    assert create_once(store, "once/a", b"first") is True
    assert create_once(store, "once/a", b"first") is True  # a retried write
    assert create_once(store, "once/a", b"other") is False  # a conflict: nothing overwritten
    found = store.get("once/a")
    assert found is not None and found.data == b"first"
