"""A timer thread's sleep that only an earlier due time interrupts.

A timer thread (the worker's ticker, the local dispatcher's timer) keeps many due times, and most of
them are dropped before they come: an attempt's heartbeat and timeout, a delivery's deadline answered
long before it. Woken for every time added it cost a context switch or two each. So the thread
sleeps until the earliest time it knows of, and a new time wakes it only if it falls before that;
while the thread is awake nothing wakes it, since it looks at its times before it sleeps again.
"""

from __future__ import annotations

import math
import threading


class Sleeper:
    """When one thread, waiting on ``cond``, looks at its due times next (monotonic seconds).

    Every method is called with ``cond``'s lock held.
    """

    __slots__ = ("_cond", "_wake_at")

    def __init__(self, cond: threading.Condition) -> None:
        self._cond = cond
        # At the latest when the thread looks next: inf while it waits for anything at all, -inf
        # while it is awake (it looks before it sleeps again).
        self._wake_at = -math.inf

    @property
    def wake_at(self) -> float:
        return self._wake_at

    def due_by(self, when: float) -> bool:
        """Something falls due at ``when``: wake the thread if it would sleep past that; whether
        it was woken."""
        if when >= self._wake_at:
            return False
        self._wake_at = when
        self._cond.notify()
        return True

    def awake(self) -> None:
        """The thread is about to act on what fell due: until it sleeps again nothing wakes it."""
        self._wake_at = -math.inf

    def sleep(self, until: float, now: float, *, max_wait: float | None = None) -> None:
        """Wait till ``until`` (inf: till woken), or till a time it was told of that has not come
        yet if that is earlier, and at most ``max_wait`` seconds.

        The told time is kept though what fell due then may be gone (an attempt stopped before the
        thread saw it): sleeping till then, whatever is due later need not wake it.
        """
        promised = self._wake_at if self._wake_at > now else math.inf
        self._wake_at = min(until, promised)
        timeout = None if self._wake_at == math.inf else self._wake_at - now
        if max_wait is not None:
            timeout = max_wait if timeout is None else min(timeout, max_wait)
        self._cond.wait(timeout)
