"""What this instance wrote to a run's ledger and a published view may not show yet.

A chain hop without a publish between them (the completing callback dispatches the next task itself)
leaves the head behind the run: the next task's callbacks arrive before its dispatch, or even its
upstream's success, is published. The instance that wrote those events remembers them, and its
callbacks see the run as the published view with them folded ahead (``servo.core.fold.fold_ahead``).
Another instance sees only the published view; what it cannot yet accept it asks the worker to retry
(``callbacks._as_dispatched``). Memory only, per instance: losing it costs a publish's wait, never
a fact, since every event here is in the ledger already.

A lone chain's completions share publishes, so a run's unpublished writes pile up between two; each
view is therefore the run's last one with only the newer writes folded on (``_Ahead``): folding them
all again on every callback was a fifth of the embedded stack's CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from servo.core.events import Event
from servo.core.fold import fold_ahead, fold_further_ahead
from servo.core.state import RunPartition
from servo.services.context import ServiceContext

# A publish folds what was written within about a second (longer under load); past this an event is
# either published or was refused by the fold, and is forgotten.
KEEP_MS = 60_000
MAX_RUNS = 10_000
# Runs whose last view is kept (each a copy of its run's rows): those being called back right now.
MAX_VIEWS = 256
# The key of an instance's memory in its warm state (``ServiceContext.instance_state``).
INSTANCE_KEY = "callback-recent-writes"


def recent_writes(ctx: ServiceContext) -> RecentWrites | None:
    """Where writers dispatch ahead of a publish (``settings.callback_dispatch``), this instance's
    memory of the events it wrote that a published view may not show yet."""
    return ctx.instance_state(INSTANCE_KEY, RecentWrites) if ctx.settings.callback_dispatch else None


@dataclass(frozen=True, slots=True)
class _Ahead:
    """The last view made of a run: ``part`` with the remembered events ``ids`` folded ahead.

    Between two publishes every callback of the run gets the same published partition (the
    snapshot cache's object) and the same writes plus a few new ones, so the next view folds only
    those onto this one (``fold_further_ahead``) instead of all of them onto a copy of ``part``.
    """

    part: RunPartition
    ids: frozenset[str]
    view: RunPartition


class RecentWrites:
    """Events by (tenant, workspace, run), with the time each was remembered; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[tuple[str, str, str], dict[str, tuple[int, Event]]] = {}
        self._ahead: dict[tuple[str, str, str], _Ahead] = {}
        # Completions of tasks nothing waits on, which are not folded ahead: (time, idempotency key)
        # by task key, so the run's last one can tell it ends the run before a publish shows it.
        self._leaf_ends: dict[tuple[str, str, str], dict[str, tuple[int, str]]] = {}
        self._swept_ms = 0  # when remembered writes past KEEP_MS were last let go

    def remember(self, tenant_id: str, workspace_id: str, events: Sequence[Event], now_ms: int) -> None:
        with self._lock:
            for event in events:
                if event.run_id is not None:
                    key = (tenant_id, workspace_id, event.run_id)
                    self._runs.setdefault(key, {})[event.event_id] = (now_ms, event)
            # A short run's writes are published with its end and no callback of it views them
            # again to forget them: once a while, whatever is past keeping goes.
            if len(self._runs) > MAX_RUNS or now_ms - self._swept_ms >= KEEP_MS:
                self._forget_old(now_ms)

    def leaf_ended(
        self, tenant_id: str, workspace_id: str, part: RunPartition, task_key: str, event: Event, now_ms: int
    ) -> int:
        """Note that this instance wrote ``event``, the completion of ``task_key`` (a task nothing
        waits on); how many other tasks of the run ``part`` (its callback's view) may still be open.

        Each callback notes its own completion after handing it over, so of several ending together
        the last to note counts the others done, and all of them are handed over by then. A noted
        completion the fold later refuses (or a retry) only makes a count too low: a publish sooner.
        """
        run = part.run
        if run is None:
            return 0
        key = (tenant_id, workspace_id, part.run_id)
        with self._lock:
            ends = self._leaf_ends.setdefault(key, {})
            ends[task_key] = (now_ms, event.idempotency_key)
            for done in [
                k for k, (at, idem) in ends.items() if idem in part.idempotency or now_ms - at >= KEEP_MS
            ]:
                del ends[done]
            # The view counts every noted completion it does not show yet as open (this one included).
            open_besides = run.tasks_total - run.tasks_completed - len(ends)
            if open_besides <= 0:
                del self._leaf_ends[key]  # the run's last: no later callback of it needs the notes
            elif len(self._leaf_ends) > MAX_RUNS:
                self._forget_old_leaf_ends(now_ms)
            return open_besides

    def _forget_old_leaf_ends(self, now_ms: int) -> None:
        """Runs noted longest ago go first; a run that loses its notes only publishes its end later."""
        kept = {
            k: v for k, v in self._leaf_ends.items() if any(now_ms - at < KEEP_MS for at, _ in v.values())
        }
        for key in list(kept)[: max(0, len(kept) - MAX_RUNS)]:
            del kept[key]
        self._leaf_ends = kept

    def _forget_old(self, now_ms: int) -> None:
        self._swept_ms = now_ms
        # A run whose last completion was not a noted leaf's (it failed) left its leaves' notes.
        self._forget_old_leaf_ends(now_ms)
        for key in list(self._runs):
            kept = {i: v for i, v in self._runs[key].items() if now_ms - v[0] < KEEP_MS}
            if kept:
                self._runs[key] = kept
            else:
                del self._runs[key]
                self._ahead.pop(key, None)

    def view(self, tenant_id: str, workspace_id: str, part: RunPartition, now_ms: int) -> RunPartition:
        """``part`` (a published view of its run) with this instance's later writes folded ahead.

        An event the view shows applied (its idempotency key is there) is forgotten: every later
        view descends from this one. The view is shared with the run's other callbacks: do not
        change it (copy it first).
        """
        key = (tenant_id, workspace_id, part.run_id)
        with self._lock:
            found = self._runs.get(key)
            if not found:
                return part
            pending = {
                i: v
                for i, v in found.items()
                if now_ms - v[0] < KEEP_MS and v[1].idempotency_key not in part.idempotency
            }
            if not pending:
                del self._runs[key]
                self._ahead.pop(key, None)
                return part
            # ``pending`` is the run's entry from now on, which remember() changes: take what the
            # fold needs while holding the lock.
            self._runs[key] = pending
            ids = frozenset(pending)
            events = [event for _, event in pending.values()]
            last, newer = self._ahead.get(key), []
            if last is not None and last.part is part and last.ids <= ids:
                newer = [pending[i][1] for i in ids - last.ids]
            else:
                last = None  # another publish, or a remembered event aged out since
        view = None if last is None else fold_further_ahead(last.view, max(last.ids), newer)
        if view is None:
            view = fold_ahead(part, events)
        with self._lock:
            # Another callback of the run may have made one meanwhile: either is a true view.
            if key in self._runs:
                self._keep(key, _Ahead(part, ids, view))
        return view

    def unpublished_view(self, tenant_id: str, workspace_id: str, run_id: str, now_ms: int) -> RunPartition:
        """The run as this instance wrote it, where no publish shows it yet (its trigger dispatched
        its roots itself): ``view`` of an empty partition, which is kept with the view so that the
        run's next callbacks fold only what is newer. Without a remembered write, the run has no row."""
        key = (tenant_id, workspace_id, run_id)
        with self._lock:
            last = self._ahead.get(key)
        base = last.part if last is not None and last.part.run is None else RunPartition(run_id)
        return self.view(tenant_id, workspace_id, base, now_ms)

    def _keep(self, key: tuple[str, str, str], ahead: _Ahead) -> None:
        self._ahead.pop(key, None)  # the most recent last, so the oldest goes first
        self._ahead[key] = ahead
        if len(self._ahead) > MAX_VIEWS:
            del self._ahead[next(iter(self._ahead))]

    def further(
        self, tenant_id: str, workspace_id: str, view: RunPartition, events: Sequence[Event]
    ) -> RunPartition | None:
        """``view`` with ``events`` (not written yet) folded on, if ``view`` is the run's last view
        and they extend it (``fold_further_ahead``); None otherwise. Once they are written and
        remembered, ``advance`` makes the result the run's last view, so the run's next callback
        does not fold them again."""
        with self._lock:
            last = self._ahead.get((tenant_id, workspace_id, view.run_id))
        if last is None or last.view is not view:
            return None
        return fold_further_ahead(view, max(last.ids), events)

    def advance(
        self,
        tenant_id: str,
        workspace_id: str,
        view: RunPartition,
        ahead: RunPartition,
        events: Sequence[Event],
    ) -> None:
        """``ahead`` (``further`` of ``view`` over ``events``) is the run's last view from now on,
        as long as ``view`` still is and every one of ``events`` is remembered."""
        key = (tenant_id, workspace_id, view.run_id)
        with self._lock:
            last, found = self._ahead.get(key), self._runs.get(key, {})
            if last is None or last.view is not view or any(e.event_id not in found for e in events):
                return
            self._keep(key, _Ahead(last.part, last.ids | {e.event_id for e in events}, ahead))
