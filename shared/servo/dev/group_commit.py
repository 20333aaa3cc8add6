"""Group commit for the embedded stack's compaction: one background loop publishes for every writer.

Writers hand over the ledger objects they wrote and return; those that read back what they wrote
(cancel, timers, a trigger that leaves its roots to the compactor) wait for the publish that covers
them. The loop takes everything queued into one compaction per workspace. It waits a short window
after each publish so that a burst (a fan-out's callbacks, the controller's acknowledgements) shares
one publish, while an idle stack publishes at once and so does a writer someone is waiting on (a
cancel's caller): the window trades background latency for fewer publishes, never a user's. Writes
that only record progress (a dispatch, a start, a heartbeat, a completion whose callback already
dispatched the next hop, a run's creation whose trigger dispatched its roots) unblock nothing, so
while nothing else is queued they wait the longer progress window from the first of them, however
long the stack was idle: a task's start then shares the publish of its finish, and a short run's
creation and hops share the publish of its end. A reader that asks for the state first has it
published at once (``settle``).
It hands the compaction every object written since the last publish, so the compaction lists nothing,
and folds on the head it published last without reading it back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from servo.services.context import ServiceContext
from servo.services.orchestrate import Changes
from servo.settings import DEFAULT_GROUP_COMMIT_PROGRESS_WINDOW_MS, DEFAULT_GROUP_COMMIT_WINDOW_MS

logger = logging.getLogger("servo.dev")

Scope = tuple[str, str]  # (tenant, workspace)
Compact = Callable[[ServiceContext, str, str, list[str]], Changes]
OnChanged = Callable[[ServiceContext, Scope, Changes], None]

MAX_RETRY_DELAY_MS = 1000


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def _compact_hinted(ctx: ServiceContext, tenant_id: str, workspace_id: str, names: list[str]) -> Changes:
    from servo.services.orchestrate import compact_changes

    # The loop is its workspace's only publisher (the process holds the data directory's lock, and
    # a sweep here publishes through the same cache): it neither lists the ledger nor reads its head.
    return compact_changes(ctx, tenant_id, workspace_id, names, sole_publisher=True)


class GroupCommit:
    """The compaction loop of the embedded stack.

    Args:
        on_changed: called with what a compaction leaves to act on (the runs it changed, the sensor
            results it read): the side effects after commit.
        compact: folds and publishes the named objects of one workspace (injected for tests).
        window_ms: how long after a publish the loop collects writes before taking the next batch.
        progress_window_ms: the same while everything queued only records progress (``urgent``
            False); an urgent write ends it at ``window_ms``.
        clock_ms: the loop's clock, injected for tests.
        wait: how the loop waits out the window (seconds), injected for tests; by default the wait
            ends early when a writer that awaits its publish arrives.
    """

    def __init__(
        self,
        on_changed: OnChanged | None = None,
        *,
        compact: Compact = _compact_hinted,
        window_ms: int = DEFAULT_GROUP_COMMIT_WINDOW_MS,
        progress_window_ms: int = DEFAULT_GROUP_COMMIT_PROGRESS_WINDOW_MS,
        clock_ms: Callable[[], int] = _monotonic_ms,
        wait: Callable[[float], None] | None = None,
    ) -> None:
        self._on_changed = on_changed
        self._compact = compact
        self._window_ms = window_ms
        self._progress_window_ms = max(progress_window_ms, window_ms)
        self._urgent = False  # something queued is more than progress
        self._clock_ms = clock_ms
        self._wait = wait
        self._cv = threading.Condition()
        self._queued: dict[Scope, set[str]] = {}
        self._contexts: dict[Scope, ServiceContext] = {}
        self._enqueued = 0  # tickets handed out
        self._awaited = 0  # the newest ticket whose writer waits for its publish
        self._published = 0  # every ticket up to this one went through a compaction round
        self._running: frozenset[Scope] = frozenset()  # the workspaces of the round running, if any
        self._stopped = False
        self._last_publish_ms: int | None = None
        self._queued_since_ms = 0  # when the queue last went from empty to holding something
        self._failures = 0  # consecutive failed rounds
        self._thread = threading.Thread(target=self._loop, name="servo-group-commit", daemon=True)
        self._thread.start()

    def commit(
        self,
        ctx: ServiceContext,
        scope: Scope,
        names: Sequence[str],
        *,
        await_publish: bool = True,
        urgent: bool = True,
    ) -> None:
        """Hand over objects written to ``scope``'s ledger; with ``await_publish``, return once a
        compaction round covering them has ended (published, or failed and queued for retry).
        ``urgent`` False: the objects only record progress, and may wait the longer window."""
        with self._cv:
            if self._stopped:
                return  # durable in the ledger: the sweep folds them
            # Only what the loop decides on wakes it (and every writer waiting on the condition): work
            # where it had none, or a window to cut short or to shorten. Any other commit joins the
            # batch the loop takes at the window's end anyway; a fan-out's callbacks commit several
            # times a task, and each wake-up cost a context switch or two.
            wake = not self._queued or await_publish or (urgent and not self._urgent)
            if not self._queued:
                self._queued_since_ms = self._clock_ms()
            self._queued.setdefault(scope, set()).update(names)
            self._contexts[scope] = ctx
            self._urgent = self._urgent or urgent
            self._enqueued += 1
            ticket = self._enqueued
            if await_publish:
                self._awaited = ticket
            if wake:
                self._cv.notify_all()
            if await_publish:
                self._cv.wait_for(lambda: self._published >= ticket)

    def settle(self, scope: Scope) -> None:
        """Return once a round has taken what was handed over for ``scope`` so far (published, or
        failed and queued for retry, as for a writer that awaits its publish): the round skips its
        window. At once when nothing of ``scope`` is queued or being published; on the loop's own
        thread too (a round cannot wait for itself)."""
        if threading.current_thread() is self._thread:
            return
        with self._cv:
            if scope not in self._queued and scope not in self._running:
                return
            ticket = self._enqueued
            self._awaited = max(self._awaited, ticket)
            self._cv.notify_all()
            self._cv.wait_for(lambda: self._published >= ticket or self._stopped)

    def commits(self) -> int:
        """How many commits were handed over so far (lets a caller tell whether new work arrived)."""
        with self._cv:
            return self._enqueued

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued and no compaction runs; False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._queued and not self._running, timeout)

    def stop(self) -> None:
        """Refuse new commits, compact what is queued once more, and join the loop."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: bool(self._queued) or self._stopped)
                if not self._queued:
                    return
                stopping = self._stopped
            if not stopping:
                self._wait_window()  # whatever arrives meanwhile joins this batch
            with self._cv:
                batch, self._queued = self._queued, {}
                self._urgent = False
                contexts = {scope: self._contexts[scope] for scope in batch}
                covered = self._enqueued
                self._running = frozenset(batch)
            failed: dict[Scope, set[str]] = {}
            try:
                failed = self._round(batch, contexts)
            finally:
                self._finish(covered, failed)

    def _finish(self, covered: int, failed: dict[Scope, set[str]]) -> None:
        with self._cv:
            # Failed names go back to the queue for the next round; not when stopping, since they
            # are durable in the ledger and the sweep folds them. Their waiters are released either
            # way: the append succeeded, and holding them would not make the publish come sooner.
            if not self._stopped:
                for scope, names in failed.items():
                    self._queued.setdefault(scope, set()).update(names)
                    self._urgent = True  # the backoff paces a retry, not the progress window
            self._failures = min(self._failures + 1, 10) if failed else 0
            self._running = frozenset()
            self._published = max(self._published, covered)
            self._last_publish_ms = self._clock_ms()
            self._cv.notify_all()

    def _wait_window(self) -> None:
        if self._wait is not None:
            with self._cv:
                remaining = self._deadline_ms() - self._clock_ms()
            if remaining > 0:
                self._wait(remaining / 1000)
            return
        with self._cv:
            while not self._stopped and not self._cut_short():
                # Re-read on every wake-up: an urgent commit shortens the progress window.
                remaining = self._deadline_ms() - self._clock_ms()
                if remaining <= 0:
                    return
                self._cv.wait(remaining / 1000)  # a commit notifies: re-check whether one is awaited

    def _deadline_ms(self) -> int:
        """When the loop takes what is queued."""
        last = self._last_publish_ms
        if self._failures and last is not None:
            # Back off after failures so a persistent fault does not spin the loop.
            return last + min(max(self._window_ms, 10) << self._failures, MAX_RETRY_DELAY_MS)
        after_last = -1 if last is None else last + self._window_ms  # an idle stack publishes at once
        if self._urgent:
            return after_last
        # Progress alone waits for company from its first write, however long the stack was idle: a
        # short run's creation, starts and hops then share the publish of its end.
        return max(after_last, self._queued_since_ms + self._progress_window_ms)

    def _cut_short(self) -> bool:
        # A writer someone waits on (a cancel's caller, a reader's settle) skips the window: the window trades
        # background latency for fewer publishes, never a user's. Not after failures (the backoff).
        return self._awaited > self._published and not self._failures

    def _round(
        self, batch: dict[Scope, set[str]], contexts: dict[Scope, ServiceContext]
    ) -> dict[Scope, set[str]]:
        """One compaction per workspace of the batch; returns the names of the compactions that failed."""
        failed: dict[Scope, set[str]] = {}
        for scope, names in batch.items():
            ctx = contexts[scope]
            try:
                changed = self._compact(ctx, scope[0], scope[1], sorted(names))
            except Exception:
                logger.exception("group commit compaction failed; the next round retries it")
                failed[scope] = names
                continue
            if changed and self._on_changed is not None:
                try:
                    self._on_changed(ctx, scope, changed)
                except Exception:
                    logger.exception("scheduling side effects failed; the sweep will retry them")
        return failed
