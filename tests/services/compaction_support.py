"""Helpers for compaction tests: valid histories, ledger writes, store wrappers that crash or spy."""

from __future__ import annotations

import builtins
import contextlib
import threading
from typing import Any

from hypothesis import strategies as st
from servo.core.errors import ServoError
from servo.core.events import Event, encode_event, ledger_object_name
from servo.core.fold import fold, fold_run
from servo.core.ids import UlidFactory
from servo.core.state import FoldState, RunPartition
from servo.store import ObjectMeta, ObjectStore, StoredObject

from tests.core.test_fold import T0, TENANT, WS, History
from tests.core.test_fold_properties import _actions, _do, _graph

RUNS = ("01HZZZZZZZZZZZZZZZZZZZRUNA", "01HZZZZZZZZZZZZZZZZZZZRUNB", "01HZZZZZZZZZZZZZZZZZZZRUNC")
NOW = 1_700_000_000_000 + 3_600_000


def histories(data: st.DataObject, max_runs: int = 2, max_steps: int = 30) -> list[Event]:
    """A valid multi-run history (built by h2's simulator), in the order it happened."""
    ids = UlidFactory(lambda n: bytes(n))
    # Each run's clock is offset by a few ms so no two events share an id (the ledger could not hold them).
    n_runs = data.draw(st.integers(1, max_runs), label="runs")
    runs = [History(run=RUNS[i], ids=ids, now=T0 + 7 * i) for i in range(n_runs)]
    parts: dict[str, RunPartition] = {}
    for h in runs:
        h.trigger()
        h.plan(_graph(data, data.draw(st.integers(1, 4), label="tasks")))
        parts[h.run] = fold_run(None, h.run, h.events)
    events = [e for h in runs for e in h.events]
    for _ in range(data.draw(st.integers(0, max_steps), label="steps")):
        h = data.draw(st.sampled_from(runs), label="run")
        choices = _actions(h, parts[h.run], h.events)
        if not choices:
            continue
        action, arg = data.draw(st.sampled_from(choices), label="action")
        event = _do(h, action, arg, h.events, data)
        events.append(event)
        parts[h.run] = fold_run(parts[h.run], h.run, [event])
    return events


def simple_history(n_tasks: int = 3) -> list[Event]:
    h = History(run=RUNS[0], ids=UlidFactory(lambda n: bytes(n)))
    h.trigger()
    keys = [f"a.t{i}" for i in range(n_tasks)]
    h.plan({k: keys[i - 1 : i] for i, k in enumerate(keys)})
    h.run_task(keys[0])
    return h.events


def write(store: ObjectStore, events: list[Event]) -> list[str]:
    names = []
    for e in events:
        name = ledger_object_name(e.event_id)
        with contextlib.suppress(ServoError):  # already written: a duplicate append
            store.create(name, encode_event(e))
        names.append(name)
    return names


def clean_fold(events: list[Event]) -> FoldState:
    return fold(
        FoldState(TENANT, WS), sorted({e.event_id: e for e in events}.values(), key=lambda e: e.event_id)
    )


def view(state: FoldState) -> dict[str, tuple[Any, ...]]:
    return {
        r: (p.run, p.tasks, p.deps, p.timers, p.outbox, p.idempotency, sorted(p.events))
        for r, p in state.runs.items()
    }


class Crash(Exception):
    """An injected crash between two writes."""


class CrashingStore:
    """Delegates to ``inner`` but raises Crash instead of performing the ``crash_at``-th write."""

    def __init__(self, inner: ObjectStore, crash_at: int | None) -> None:
        self.inner = inner
        self.crash_at = crash_at
        self.writes = 0
        self._lock = threading.Lock()

    def _write(self) -> None:
        with self._lock:
            self.writes += 1
            if self.crash_at is not None and self.writes == self.crash_at:
                raise Crash(f"crash before write {self.writes}")

    def get(self, name: str) -> StoredObject | None:
        return self.inner.get(name)

    def create(self, name: str, data: bytes, **kw: Any) -> int:
        self._write()
        return self.inner.create(name, data, **kw)

    def put(self, name: str, data: bytes, **kw: Any) -> int:
        self._write()
        return self.inner.put(name, data, **kw)

    def list(self, prefix: str, **kw: Any) -> builtins.list[ObjectMeta]:
        return self.inner.list(prefix, **kw)

    def delete(self, name: str, **kw: Any) -> bool:
        return self.inner.delete(name, **kw)


class SpyStore(CrashingStore):
    """Records every name read or listed."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner, None)
        self.touched: builtins.list[str] = []

    def get(self, name: str) -> StoredObject | None:
        self.touched.append(name)
        return self.inner.get(name)

    def list(self, prefix: str, **kw: Any) -> builtins.list[ObjectMeta]:
        self.touched.append(prefix)
        return self.inner.list(prefix, **kw)
