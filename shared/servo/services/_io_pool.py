"""One bounded thread pool per process for I/O that fans out: a wide controller pass's Cloud Tasks
creates and the ledger writes of a batch of events.

Each of those calls waits on the network; one after another, a 1,000-task fan-out took 100 s on the
emulator stack just to reach its last worker. The pool bounds how many run at once per instance.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

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

    The first exception is raised once every call has ended. Called from a pool thread, it runs
    inline: a pool thread waiting on the pool could wait forever. IO_CONCURRENCY = 1 runs everything
    inline, in order (fault tests set it, so a seed replays the same writes).
    """
    if len(items) <= 1 or IO_CONCURRENCY <= 1 or getattr(_inside, "pool", False):
        return [fn(x) for x in items]
    # Each call runs in a copy of the caller's context: its log labels and trace go with it.
    futures = [_executor().submit(contextvars.copy_context().run, fn, x) for x in items]
    errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]
