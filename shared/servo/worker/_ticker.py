"""One thread per worker process that keeps the time of every attempt's repeating jobs.

An attempt's heartbeats, log flushes and timeout each had a thread of their own, started and joined
per attempt (about 0.1 ms of CPU each, most of a short task's worker cost). Here one ticker thread
holds the next due time of every job and hands a due job to a kept thread (``ReusedThreads``): a job
that blocks, such as a heartbeat waiting on a slow control plane, holds back no other attempt's.

Most attempts end long before any of their jobs is due, so the ticker sleeps until the earliest due
time it has seen and is woken only for a job due before that: registering and stopping an attempt's
jobs wakes no thread (it woke the ticker once or twice an attempt).
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable

from servo.dispatch import ReusedThreads, Sleeper

# A job runs again ``interval_s`` after its last run ended, while it returns True and is not stopped.
Job = Callable[[], bool]


class Repeating:
    """One job of a ticker; ``stop`` ends it."""

    __slots__ = ("_entry", "_interval_s", "_job", "_lock", "_soon", "_stopped", "_ticker")

    def __init__(self, ticker: Ticker, interval_s: float, job: Job) -> None:
        self._ticker = ticker
        self._interval_s = interval_s
        self._job = job
        # Held while the job runs: stop() waits on it. Reentrant, so a job may stop itself.
        self._lock = threading.RLock()
        self._stopped = False
        self._soon = False  # hurried while it ran: the next run is due at once
        self._entry: list[object] | None = None

    def stop(self) -> None:
        """No run after this returns: a run in flight is waited for, the next one never starts."""
        self._stopped = True
        with self._lock:
            self._ticker._drop(self)

    def hurry(self) -> None:
        """Run the job now rather than at its time (or again right after a run in flight); its
        interval counts from that run. Nothing for a stopped job."""
        self._soon = True
        self._ticker._hurry(self)

    def _run(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._soon = False
            again = self._job()
            if again and not self._stopped:
                self._ticker._schedule(self, 0.0 if self._soon else self._interval_s)


class Ticker:
    """Runs each job's runs on ``threads`` when they fall due."""

    def __init__(self, threads: ReusedThreads) -> None:
        self._threads = threads
        self._due: list[list[object]] = []  # heap of [due (monotonic s), seq, Repeating]
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._sleeper = Sleeper(self._cond)

    def every(self, interval_s: float, job: Job, *, first_s: float | None = None) -> Repeating:
        """Run ``job`` after ``first_s`` (default ``interval_s``), then every ``interval_s`` after
        each run ends, while it returns True."""
        handle = Repeating(self, interval_s, job)
        self._schedule(handle, interval_s if first_s is None else first_s)
        return handle

    def _schedule(self, handle: Repeating, delay_s: float) -> None:
        entry: list[object] = [time.monotonic() + delay_s, next(self._seq), handle]
        with self._cond:
            handle._entry = entry
            heapq.heappush(self._due, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="servo-ticker", daemon=True)
                self._thread.start()
            else:
                self._sleeper.due_by(entry[0])  # type: ignore[arg-type]

    def _hurry(self, handle: Repeating) -> None:
        with self._cond:  # reentrant: _schedule takes it too
            entry = handle._entry
            if entry is None or handle._stopped:
                return  # running (``_soon`` reschedules it at once) or stopped
            self._due.remove(entry)
            heapq.heapify(self._due)
            self._schedule(handle, 0.0)

    def _drop(self, handle: Repeating) -> None:
        with self._cond:
            entry, handle._entry = handle._entry, None
            if entry is not None and entry in self._due:
                # Few jobs are due at once (two or three per attempt in flight): a linear removal
                # is cheaper than waking later for a job that will not run.
                self._due.remove(entry)
                heapq.heapify(self._due)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if self._due and self._due[0][0] <= now:  # type: ignore[operator]
                        break
                    head: float = self._due[0][0] if self._due else math.inf  # type: ignore[assignment]
                    # Till the time of a job registered and stopped before this thread saw it, too:
                    # the next attempt's jobs (due later) need not wake it.
                    self._sleeper.sleep(head, now)
                self._sleeper.awake()
                entry = heapq.heappop(self._due)
                handle = entry[2]
                assert isinstance(handle, Repeating)
                handle._entry = None
            self._threads.run(handle._run)


_SHARED: Ticker | None = None
_SHARED_LOCK = threading.Lock()


def shared_ticker() -> Ticker:
    """The process's ticker, started on first use."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = Ticker(ReusedThreads("servo-attempt-job"))
        return _SHARED
