"""LocalFileStore's preconditions hold across real processes (functions-framework workers and CLIs share
one data directory in embedded mode)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from collections.abc import Callable
from pathlib import Path

from servo.core.errors import PreconditionFailed
from servo.store import LocalFileStore

from tests.store.test_store_contract import increment

_WON, _LOST = 0, 3
# fork: a fresh interpreter per racer (spawn) would spend seconds importing on two shared cores.
_CTX = multiprocessing.get_context("fork")


def _create_racer(root: str, index: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    store = LocalFileStore(Path(root))
    barrier.wait()
    try:
        store.create("run_keys/race.json", f"racer-{index}".encode())
    except PreconditionFailed:
        raise SystemExit(_LOST) from None
    raise SystemExit(_WON)


def _incrementer(root: str, times: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    store = LocalFileStore(Path(root))
    barrier.wait()
    for _ in range(times):
        increment(store, "counter.json")


def _run_all(target: Callable[..., None], args: list[tuple[object, ...]]) -> list[int | None]:
    procs = [_CTX.Process(target=target, args=a) for a in args]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    return [p.exitcode for p in procs]


def test_create_if_absent_across_processes_has_one_winner(tmp_path: Path) -> None:
    barrier = _CTX.Barrier(16)
    codes = _run_all(_create_racer, [(str(tmp_path), i, barrier) for i in range(16)])
    assert sorted(c if c is not None else -1 for c in codes) == [_WON] + [_LOST] * 15
    got = LocalFileStore(tmp_path).get("run_keys/race.json")
    assert got is not None and got.data == f"racer-{codes.index(_WON)}".encode()


def test_cas_increments_across_processes_are_exact(tmp_path: Path) -> None:
    procs, times = 8, 10
    barrier = _CTX.Barrier(procs)
    codes = _run_all(_incrementer, [(str(tmp_path), times, barrier) for _ in range(procs)])
    assert codes == [0] * procs
    got = LocalFileStore(tmp_path).get("counter.json")
    assert got is not None and int(got.data) == procs * times
    assert [m.name for m in LocalFileStore(tmp_path).list("")] == ["counter.json"]
