"""Daemon threads kept for the next piece of work: starting a thread and joining it cost about 0.1 ms
of CPU each, and a task used to start several (its asset, its heartbeats, its log uploads, each
in-process request it served).

A job goes to an idle thread, or to a new one when none is idle; a thread idle for ``idle_s`` ends, and
every thread ends once ``close``d (a busy one when its job is done). A job that never returns (an asset
that ignores its cancel) keeps its thread, as a thread of its own would have been kept; the next job
gets another. The threads are daemons: none of them holds the interpreter's exit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

# How long a kept thread waits for another job before it ends.
IDLE_THREAD_S = 30.0

Job = tuple[Callable[[], object], Callable[[object], None] | None]
_END = None  # what ``close`` puts in an idle thread's inbox


class ReusedThreads:
    """Runs jobs on reused daemon threads named ``name``."""

    def __init__(self, name: str, *, idle_s: float = IDLE_THREAD_S) -> None:
        self._name = name
        self._idle_s = idle_s
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Job | None]] = []
        self._threads: set[threading.Thread] = set()
        self._closed = False

    def run(self, work: Callable[[], object], then: Callable[[object], None] | None = None) -> None:
        """Run ``work()`` on a kept thread; then, once that thread is idle again, ``then(result)``.

        ``then`` runs after the thread is back in the idle list, so a caller woken by it finds the
        thread free for its next job, and a ``run`` from ``then`` itself goes to this very thread (the
        last one idled), with no hand-off. ``work`` must not raise (the caller catches what it expects).

        Raises:
            RuntimeError: the threads were closed, or the interpreter is shutting down.
        """
        job: Job = (work, then)
        thread = None
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self._name} threads are closed")
            inbox = self._idle.pop() if self._idle else None
            if inbox is None:
                inbox = queue.SimpleQueue()
                thread = threading.Thread(target=self._serve, args=(inbox,), name=self._name, daemon=True)
                self._threads.add(thread)
        inbox.put(job)
        if thread is not None:
            try:
                thread.start()
            except BaseException:
                with self._lock:
                    self._threads.discard(thread)
                raise

    def close(self, timeout: float = 5.0) -> bool:
        """End every thread, the idle ones now and a busy one when its job is done; True if all
        ended within ``timeout``."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            threads = list(self._threads)
        for inbox in idle:
            inbox.put(_END)
        deadline = time.monotonic() + timeout
        others = [t for t in threads if t is not threading.current_thread() and t.ident is not None]
        for thread in others:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in others)

    def _serve(self, inbox: queue.SimpleQueue[Job | None]) -> None:
        job = inbox.get()
        while job is not _END:
            work, then = job
            result = work()
            with self._lock:
                closed = self._closed
                if not closed:
                    self._idle.append(inbox)
            if then is not None:
                then(result)
            del job, work, then, result  # an idle thread holds nothing of the last job
            if closed:
                break
            try:
                job = inbox.get(timeout=self._idle_s)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:
                        self._idle.remove(inbox)
                        break
                job = inbox.get()  # taken for a job (or closed) just as the wait ended: it is on the way
        with self._lock:
            self._threads.discard(threading.current_thread())
