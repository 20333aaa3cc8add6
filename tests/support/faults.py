"""Fault injection at the two ports the control plane depends on: the object store and the task queue.

``FaultyStore`` wraps an ObjectStore and, following a ``FaultPlan``, raises ``Crash`` before or after
the Nth write whose name matches a pattern (a process dying mid-request), replays writes the way a GCS
client retry does after a lost response (the second create answers 412 for the caller's own object),
and holds ledger objects back so they become visible after newer ones (a slow upload from a writer
whose ULID is older). ``ChaosQueue`` is a TaskQueue with Cloud Tasks' name dedup that hands its tasks
back duplicated, late and shuffled. Every injected fault is counted, so a test can say how many it
survived.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import json
import random
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from servo.dispatch import EnqueueOutcome, HttpTask
from servo.services.timers import WORKSPACES_PREFIX
from servo.store import ObjectMeta, ObjectStore, StoredObject
from servo.store._port import DEFAULT_CONTENT_TYPE

When = Literal["before", "after"]
_phase: contextvars.ContextVar[str] = contextvars.ContextVar("faults_phase", default="")


class Crash(Exception):
    """An injected failure: the process "died" at this write (before it, or after it committed)."""


@dataclass(frozen=True, slots=True)
class CrashAt:
    """Crash at the ``nth`` (1-based) write whose name matches ``pattern`` (and whose ``write_kind``
    matches ``kind``) made within ``phase`` ("" = any phase)."""

    pattern: str
    nth: int
    when: When
    phase: str = ""
    kind: str = ""


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What a FaultyStore injects.

    Attributes:
        crashes: one-shot crashes at chosen writes.
        duplicate_rate: probability that a create is replayed like a retried request whose first
            response was lost (the caller then sees 412 for its own object).
        holdback_rate: probability that a ledger create is held back and made visible only after
            ``holdback_writes`` further writes (out-of-order visibility).
        holdback_writes: see ``holdback_rate``.
        seed: the random source of the rates above.
    """

    crashes: tuple[CrashAt, ...] = ()
    duplicate_rate: float = 0.0
    holdback_rate: float = 0.0
    holdback_writes: int = 3
    seed: int = 0


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One write that reached the inner store (or was about to, for a crash before it)."""

    phase: str
    op: str
    name: str
    kind: str


_STATE_KINDS = (
    ("manifest.pointer.json", "pointer"),
    ("/manifests/", "manifest"),
    ("/index/", "index"),
    ("/segments/", "segments"),
)


def write_kind(name: str, data: bytes | None) -> str:
    """What a write is, finer than its name: the event type of a ledger object, the file of the state."""
    path = f"/{name}"
    if "/ledger/" in path:
        try:
            return f"ledger:{json.loads(data or b'')['event_type']}"
        except (ValueError, KeyError, TypeError):
            return "ledger:?"
    if "/state/" in path:
        return "state:" + next((kind for marker, kind in _STATE_KINDS if marker in path), "other")
    for marker, kind in (
        ("/run_keys/", "run-key"),
        ("/creations/", "run-creation"),
        ("/attempt_claims/", "attempt-claim"),
        ("/logs/", "logs"),
        ("/manifests/idempotency/", "deploy:idempotency"),
        ("/manifests/_index.json", "deploy:pointer"),
        ("/manifests/", "deploy:manifest"),
        (f"/{WORKSPACES_PREFIX}", "deploy:register"),
    ):
        if marker in path:
            return kind
    return "other"


def matching_writes(store: FaultyStore, pattern: str = ".*", kind: str = "") -> int:
    """How many writes a store saw whose name matches ``pattern`` and whose kind matches ``kind``."""
    return sum(1 for w in store.writes if re.search(pattern, w.name) and re.search(kind, w.kind))


def crash_plans(
    writes: int, when: When, pattern: str = ".*", kind: str = ""
) -> Iterator[tuple[int, FaultPlan]]:
    """One plan per matching write of a clean run: crash at the 1st, then the 2nd, ... (``when`` it)."""
    for nth in range(1, writes + 1):
        yield nth, FaultPlan(crashes=(CrashAt(pattern, nth, when, kind=kind),))


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Label the writes made by this thread (and its context) as belonging to one function path."""
    token = _phase.set(name)
    try:
        yield
    finally:
        _phase.reset(token)


def current_phase() -> str:
    return _phase.get()


class FaultyStore:
    """An ObjectStore that injects the faults of a FaultPlan into the writes passing through it."""

    def __init__(self, inner: ObjectStore, plan: FaultPlan | None = None) -> None:
        self._inner = inner
        self._plan = plan or FaultPlan()
        self._lock = threading.RLock()
        self._rng = random.Random(self._plan.seed)
        self._seen: dict[int, int] = {}
        self._fired: set[int] = set()
        self._held: list[tuple[int, str, bytes, str]] = []
        self.writes: list[WriteRecord] = []
        self.crashes = 0
        self.duplicates = 0
        self.holdbacks = 0
        self.enabled = True

    @property
    def held(self) -> int:
        """Ledger objects written but not visible yet."""
        with self._lock:
            return len(self._held)

    @property
    def injected(self) -> int:
        """Every fault injected so far."""
        return self.crashes + self.duplicates + self.holdbacks

    def set_plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan
            self._rng = random.Random(plan.seed)
            self._seen.clear()
            self._fired.clear()

    def flush(self) -> None:
        """Make every held-back object visible now."""
        with self._lock:
            held, self._held = self._held, []
        for _, name, data, content_type in held:
            with contextlib.suppress(Exception):
                self._inner.create(name, data, content_type=content_type)

    # --------------------------------------------------------------------------------------- reads

    def get(self, name: str) -> StoredObject | None:
        return self._inner.get(name)

    def list(
        self,
        prefix: str,
        *,
        start_offset: str | None = None,
        end_offset: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[ObjectMeta]:
        return self._inner.list(prefix, start_offset=start_offset, end_offset=end_offset, limit=limit)

    # -------------------------------------------------------------------------------------- writes

    def _crash_due(self, op: str, name: str, data: bytes | None = None) -> tuple[bool, bool]:
        """(crash before, crash after) for this write; counts it against every matching rule."""
        before = after = False
        kind = write_kind(name, data)
        with self._lock:
            self.writes.append(WriteRecord(current_phase(), op, name, kind))
            if not self.enabled:
                return False, False
            for i, rule in enumerate(self._plan.crashes):
                if rule.phase and rule.phase != current_phase():
                    continue
                if re.search(rule.pattern, name) is None or re.search(rule.kind, kind) is None:
                    continue
                self._seen[i] = self._seen.get(i, 0) + 1
                if self._seen[i] == rule.nth and i not in self._fired:
                    self._fired.add(i)
                    self.crashes += 1
                    before |= rule.when == "before"
                    after |= rule.when == "after"
        return before, after

    def _release_due(self) -> None:
        with self._lock:
            aged = [(n - 1, name, data, ct) for n, name, data, ct in self._held]
            due = [h for h in aged if h[0] <= 0]
            self._held = [h for h in aged if h[0] > 0]
        for _, name, data, content_type in due:
            with contextlib.suppress(Exception):
                self._inner.create(name, data, content_type=content_type)

    def _roll(self, rate: float) -> bool:
        with self._lock:
            return self.enabled and rate > 0 and self._rng.random() < rate

    def create(self, name: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> int:
        before, after = self._crash_due("create", name, data)
        if before:
            raise Crash(f"injected crash before create {name}")
        self._release_due()
        if "/ledger/" in f"/{name}" and self._roll(self._plan.holdback_rate):
            with self._lock:
                self.holdbacks += 1
                self._held.append((self._plan.holdback_writes, name, data, content_type))
            # Visible to the writer only later: report a generation as GCS would for a finished upload.
            return 1
        generation = self._inner.create(name, data, content_type=content_type)
        if self._roll(self._plan.duplicate_rate):
            with self._lock:
                self.duplicates += 1
            # The retry of a request whose response was lost: 412 for the caller's own object.
            self._inner.create(name, data, content_type=content_type)
        if after:
            raise Crash(f"injected crash after create {name}")
        return generation

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> int:
        before, after = self._crash_due("put", name, data)
        if before:
            raise Crash(f"injected crash before put {name}")
        self._release_due()
        generation = self._inner.put(
            name, data, if_generation_match=if_generation_match, content_type=content_type
        )
        if after:
            raise Crash(f"injected crash after put {name}")
        return generation

    def delete(self, name: str, *, if_generation_match: int | None = None) -> bool:
        before, after = self._crash_due("delete", name)
        if before:
            raise Crash(f"injected crash before delete {name}")
        done = self._inner.delete(name, if_generation_match=if_generation_match)
        if after:
            raise Crash(f"injected crash after delete {name}")
        return done


@dataclass
class ChaosQueue:
    """A TaskQueue with Cloud Tasks' name dedup whose deliveries come duplicated, late and shuffled.

    ``recorded`` keeps every task ever created (after name dedup), in creation order.
    """

    seed: int = 0
    duplicate_rate: float = 0.0
    late_rate: float = 0.0
    shuffle: bool = True
    recorded: list[tuple[str, HttpTask]] = field(default_factory=list)
    duplicates: int = 0
    reorders: int = 0
    _names: set[str] = field(default_factory=set)
    _pending: list[HttpTask] = field(default_factory=list)
    _late: list[HttpTask] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def enqueue(self, queue: str, task: HttpTask) -> EnqueueOutcome:
        with self._lock:
            if task.task_id in self._names:
                return EnqueueOutcome.ALREADY_EXISTS
            self._names.add(task.task_id)
            self.recorded.append((queue, task))
            self._pending.append(task)
            return EnqueueOutcome.CREATED

    def redeliver(self, task: HttpTask) -> None:
        """A delivery failed (5xx): Cloud Tasks tries again later."""
        with self._lock:
            self._pending.append(task)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._late)

    def due(self, now_ms: int) -> list[HttpTask]:
        """The tasks to deliver now: each at least once, some twice or later again, in random order."""
        with self._lock:
            ready = [t for t in self._pending if (t.schedule_time_ms or 0) <= now_ms]
            self._pending = [t for t in self._pending if (t.schedule_time_ms or 0) > now_ms]
            out = [*self._late]
            self._late = []
            for task in ready:
                out.append(task)
                if self._rng.random() < self.duplicate_rate:
                    self.duplicates += 1
                    # A duplicate now or on a later round (an at-least-once redelivery after an ack).
                    (self._late if self._rng.random() < self.late_rate else out).append(task)
            if self.shuffle and len(out) > 1:
                before = list(out)
                self._rng.shuffle(out)
                self.reorders += out != before
            return out


def shuffled_with_duplicates(
    items: builtins.list[str], rng: random.Random, duplicate_rate: float
) -> tuple[builtins.list[str], int]:
    """Items each delivered once plus random extra copies, shuffled; returns (deliveries, copies added)."""
    out = list(items)
    extra = [i for i in items if rng.random() < duplicate_rate]
    out.extend(extra)
    rng.shuffle(out)
    return out, len(extra)


class Tally:
    """Per-process totals of injected faults (or fuzzed requests), printed at the end of the session.

    Under pytest-xdist a worker's terminal summary is never shown, so ``report`` writes the worker's
    line straight to stderr, which xdist passes through to ``make test``'s output.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.total = 0
        self.tests = 0

    def add(self, n: int) -> None:
        self.total += n
        self.tests += 1

    def line(self, worker: str | None) -> str:
        where = f" on {worker}" if worker else ""
        return f"[{self.what}] {self.total} across {self.tests} tests{where}"

    # -- pytest wiring: a conftest exposes these three under the names pytest looks for ------------

    def fixture(self, name: str, property_name: str, noun: str) -> Any:
        """A fixture ``name`` a test calls with its count and a label; printed and tallied."""

        @pytest.fixture(name=name)
        def record_count(record_property: Callable[[str, object], None]) -> Callable[[int, str], None]:
            def record(n: int, label: str) -> None:
                record_property(property_name, n)
                print(f"{label}: {noun}: {n}")
                self.add(n)

            return record

        return record_count

    def sessionfinish(self, session: pytest.Session) -> None:
        worker = getattr(session.config, "workerinput", {}).get("workerid")
        if worker is None or not self.tests:
            return
        capture = session.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            sys.stderr.write(f"\n{self.line(worker)}\n")

    def terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.tests:
            terminalreporter.write_line(self.line(None))
