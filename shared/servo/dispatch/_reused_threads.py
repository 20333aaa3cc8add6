"""Daemon threads kept for the next piece of work: starting a thread and joining it cost about 0.1 ms
of CPU each, and a task used to start several (its asset, its heartbeats, its log uploads, each
in-process request it served).

A job goes to an idle thread, or to a new one when none is idle; a thread idle for ``idle_s`` ends.
A job that never returns (an asset that ignores its cancel) keeps its thread, as a thread of its own
would have been kept; the next job gets another. The threads are daemons: none of them holds the
interpreter's exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

# How long a kept thread waits for another job before it ends.
IDLE_THREAD_S = 30.0

Job = tuple[Callable[[], object], Callable[[object], None] | None]


class ReusedThreads:
    """Runs jobs on reused daemon threads named ``name``."""

    def __init__(self, name: str, *, idle_s: float = IDLE_THREAD_S) -> None:
        self._name = name
        self._idle_s = idle_s
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Job]] = []

    def run(self, work: Callable[[], object], then: Callable[[object], None] | None = None) -> None:
        """Run ``work()`` on a kept thread; then, once that thread is idle again, ``then(result)``.

        ``then`` runs after the thread is back in the idle list, so a caller woken by it finds the
        thread free for its next job. ``work`` must not raise (the caller catches what it expects).
        """
        job: Job = (work, then)
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is not None:
            inbox.put(job)
            return
        inbox = queue.SimpleQueue()
        inbox.put(job)
        threading.Thread(target=self._serve, args=(inbox,), name=self._name, daemon=True).start()

    def _serve(self, inbox: queue.SimpleQueue[Job]) -> None:
        job = inbox.get()
        while True:
            work, then = job
            result = work()
            with self._lock:
                self._idle.append(inbox)
            if then is not None:
                then(result)
            del job, work, then, result  # an idle thread holds nothing of the last job
            try:
                job = inbox.get(timeout=self._idle_s)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:
                        self._idle.remove(inbox)
                        return
                job = inbox.get()  # taken for a job just as the wait ended: it is on the way
