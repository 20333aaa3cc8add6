"""A ServiceContext on local files with a controllable clock, for service and handler tests."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from servo.core.ids import UlidFactory
from servo.services.context import ServiceContext
from servo.settings import Settings
from servo.store import LocalFileStore

if TYPE_CHECKING:
    from servo.dispatch import EnqueueOutcome, HttpTask

T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z


@dataclass
class FakeClock:
    now_ms: int = T0

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@dataclass
class RecordingQueue:
    """The in-memory TaskQueue double: records tasks, dedups names like Cloud Tasks."""

    tasks: list[tuple[str, HttpTask]] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def enqueue(self, queue: str, task: HttpTask) -> EnqueueOutcome:
        from servo.dispatch import EnqueueOutcome

        with self._lock:
            if task.task_id in self._names:
                return EnqueueOutcome.ALREADY_EXISTS
            self._names.add(task.task_id)
            self.tasks.append((queue, task))
            return EnqueueOutcome.CREATED

    def take(self) -> list[HttpTask]:
        with self._lock:
            taken = [t for _, t in self.tasks]
            self.tasks.clear()
            return taken


def _seq_random() -> Any:
    counter = itertools.count()

    def random_bytes(n: int) -> bytes:
        return next(counter).to_bytes(n, "big")

    return random_bytes


def inline_hook(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    names: Sequence[str],
    *,
    await_publish: bool = True,
    urgent: bool = True,
) -> None:
    """Compact at once and carry out the side effects in the same thread: deterministic tests.

    Every writer gets its publish before it returns, so ``await_publish`` changes nothing here.
    """
    from servo.services.orchestrate import act, compact_changes

    changes = compact_changes(ctx, tenant_id, workspace_id, names)
    if changes:
        act(ctx, tenant_id, workspace_id, changes)


def make_context(
    root: Path, *, clock: FakeClock | None = None, compact: bool = True, **settings: Any
) -> tuple[ServiceContext, FakeClock, RecordingQueue]:
    clock = clock or FakeClock()
    queue = RecordingQueue()
    base = replace(Settings(), storage="local", data_dir=root, **settings)
    ctx = ServiceContext(
        settings=base,
        store=LocalFileStore(root / base.bucket),
        clock_ms=clock,
        ids=UlidFactory(_seq_random()),
        queue=queue,
        after_ledger_write=inline_hook if compact else None,
    )
    return ctx, clock, queue
