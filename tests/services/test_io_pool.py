"""io_map: a batch's calls run up to IO_CONCURRENCY at a time, and the caller does its share."""

from __future__ import annotations

import contextvars
import threading

import pytest
from servo.services import _io_pool
from servo.services._io_pool import io_map

WAIT_S = 10.0
LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("LABEL", default="none")


def test_results_come_back_in_the_order_of_the_items() -> None:
    assert io_map(lambda x: x * 2, list(range(20))) == [x * 2 for x in range(20)]


def test_the_caller_runs_a_call_of_its_batch_itself() -> None:
    # Handing every call to a pool thread cost a wake-up and a GIL hand-off each while the caller only
    # waited; the caller now takes calls too.
    threads = io_map(lambda _: threading.get_ident(), [0, 1])
    assert threading.get_ident() in threads


def test_calls_overlap_up_to_the_concurrency_bound() -> None:
    # Every call waits until IO_CONCURRENCY calls are running at once: the batch ends only if the caller
    # and the pool threads together run that many side by side.
    together = threading.Barrier(_io_pool.IO_CONCURRENCY, timeout=WAIT_S)
    running = 0
    most = 0
    lock = threading.Lock()

    def call(_: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        together.wait()
        with lock:
            running -= 1

    io_map(call, list(range(_io_pool.IO_CONCURRENCY * 2)))
    assert most == _io_pool.IO_CONCURRENCY


def test_each_call_sees_the_callers_context_and_changes_none_of_it() -> None:
    LABEL.set("caller")

    def call(x: int) -> str:
        seen = LABEL.get()
        LABEL.set(f"call {x}")
        return seen

    assert io_map(call, list(range(12))) == ["caller"] * 12
    assert LABEL.get() == "caller"


def test_the_first_error_is_raised_once_every_call_has_ended() -> None:
    ended: list[int] = []
    gate = threading.Event()

    def call(x: int) -> int:
        if x == 0:
            raise ValueError("first")
        if x == 1:
            gate.wait(WAIT_S)  # still running when item 0 fails
            ended.append(x)
            raise KeyError("second")
        gate.set()
        ended.append(x)
        return x

    with pytest.raises(ValueError, match="first"):
        io_map(call, [0, 1, 2, 3])
    assert sorted(ended) == [1, 2, 3]


def test_a_concurrency_of_one_runs_everything_in_order_on_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_io_pool, "IO_CONCURRENCY", 1)
    order: list[tuple[int, int]] = []
    io_map(lambda x: order.append((x, threading.get_ident())), [0, 1, 2])
    assert order == [(x, threading.get_ident()) for x in (0, 1, 2)]
