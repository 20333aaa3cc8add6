"""The in-memory shape of the orchestration state that the fold produces and the projections persist.

State is partitioned by run: every M1 event belongs to exactly one run (its ``run_id``, or the run
inside its ``dispatch_id``/``timer_id``). A partition keeps the run's rows *and* the events applied
to it, so that a late event (a ULID older than what the partition already holds, from a writer with
a skewed clock) can be handled by re-folding that one run in ULID order: the result is then equal to
a clean ordered fold by construction, and no other run is read or rewritten.

Rows are immutable; a fold replaces the rows it changes, so a changed row is detectable by identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from servo.core.rows import DepRow, IdempotencyRow, OutboxRow, RunRow, TaskRow, TimerRow


@dataclass(slots=True)
class RunPartition:
    """Everything the projection holds about one run."""

    run_id: str
    run: RunRow | None = None
    tasks: dict[str, TaskRow] = field(default_factory=dict)  # by task_key
    deps: dict[tuple[str, str], DepRow] = field(default_factory=dict)  # by (upstream, downstream)
    timers: dict[str, TimerRow] = field(default_factory=dict)  # by timer_id
    outbox: dict[str, OutboxRow] = field(default_factory=dict)  # by dispatch_id
    idempotency: dict[str, IdempotencyRow] = field(default_factory=dict)  # by idempotency_key
    # event_id -> decoded event (servo.core.events.Event); typed Any to keep this module import-free.
    events: dict[str, Any] = field(default_factory=dict)
    # (task_key, attempt, attempt_id) -> id of the one heartbeat kept for that attempt
    # (servo.core.liveness); derived from ``events``, None until first worked out.
    beats: dict[tuple[str, int, str], str] | None = field(default=None, compare=False, repr=False)
    # A partition this one was folded through in memory (servo.core.fold), which a batch holding an
    # older event than this one's newest can be folded on instead of the run's whole history; never
    # stored, never compared. Its own checkpoint is an older one: a short chain, newest first.
    checkpoint: RunPartition | None = field(default=None, compare=False, repr=False)

    def copy(self) -> RunPartition:
        """A copy whose dicts may be changed without touching this partition (rows are immutable)."""
        return RunPartition(
            run_id=self.run_id,
            run=self.run,
            tasks=dict(self.tasks),
            deps=dict(self.deps),
            timers=dict(self.timers),
            outbox=dict(self.outbox),
            idempotency=dict(self.idempotency),
            events=dict(self.events),
            beats=None if self.beats is None else dict(self.beats),
        )

    @property
    def max_event_id(self) -> str:
        return max(self.events, default="")


@dataclass(slots=True)
class FoldState:
    """The whole orchestration state of one tenant/workspace."""

    tenant_id: str
    workspace_id: str
    runs: dict[str, RunPartition] = field(default_factory=dict)  # by run_id

    def copy(self) -> FoldState:
        """Shallow: partitions are shared until a fold replaces the ones it touches."""
        return FoldState(self.tenant_id, self.workspace_id, dict(self.runs))
