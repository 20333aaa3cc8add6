"""One bounded thread pool per process for I/O that fans out: a wide controller pass's Cloud Tasks
creates and the ledger writes of a batch of events.

Each of those calls waits on the network; one after another, a 1,000-task fan-out took 100 s on the
emulator stack just to reach its last worker. The pool bounds the threads it adds per instance
(IO_CONCURRENCY); each caller also runs calls of its own batch, so N callers at once run at most
N + IO_CONCURRENCY - 1 calls together (a caller's own thread was busy waiting on them before).
"""

from __future__ import annotations

import contextvars
import itertools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")

IO_CONCURRENCY = 8

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_inside = threading.local()


def _mark_pool_thread() -> None:
    _inside.pool = True


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                IO_CONCURRENCY, thread_name_prefix="servo-io", initializer=_mark_pool_thread
            )
        return _pool


def io_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]``, up to IO_CONCURRENCY at a time; results in the order of ``items``.

    The caller runs calls too, beside at most IO_CONCURRENCY - 1 pool threads: handing every call to
    the pool while the caller only waited cost a wake-up and a GIL hand-off a call, and a small batch
    (two or three ledger writes) is often done by the caller before a pool thread gets to it.
    The first exception is raised once every call has ended. Called from a pool thread, it runs
    inline: a pool thread waiting on the pool could wait forever. IO_CONCURRENCY = 1 runs everything
    inline, in order (fault tests set it, so a seed replays the same writes).
    """
    if len(items) <= 1 or IO_CONCURRENCY <= 1 or getattr(_inside, "pool", False):
        return [fn(x) for x in items]
    batch = _Batch(fn, items)
    executor = _executor()
    for _ in range(min(len(items), IO_CONCURRENCY) - 1):
        executor.submit(batch.drain)
    batch.drain()
    return batch.outcome()


class _Batch(Generic[T, R]):
    """The calls of one io_map; whoever drains it (the caller, pool threads) takes the next call."""

    def __init__(self, fn: Callable[[T], R], items: Sequence[T]) -> None:
        self._fn = fn
        self._items = items
        # Each call runs in a copy of the caller's context: its log labels and trace go with it,
        # and what one call sets is seen by no other call, nor by the caller.
        self._context = contextvars.copy_context()
        self._next = itertools.count()  # next() on it is atomic: one C call under the GIL
        self._results: list[R | None] = [None] * len(items)
        self._errors: list[BaseException | None] = [None] * len(items)
        self._left = len(items)
        self._lock = threading.Lock()
        self._ended = threading.Event()

    def drain(self) -> None:
        """Run calls of the batch until none is left to take."""
        while (i := next(self._next)) < len(self._items):
            try:
                self._results[i] = self._context.copy().run(self._fn, self._items[i])
            except BaseException as exc:  # raised to the caller once every call has ended
                self._errors[i] = exc
            with self._lock:
                self._left -= 1
                if self._left == 0:
                    self._ended.set()

    def outcome(self) -> list[R]:
        """The results once every call has ended; the first error (in item order) instead, if any."""
        self._ended.wait()
        for error in self._errors:
            if error is not None:
                raise error
        return cast(list[R], self._results)
