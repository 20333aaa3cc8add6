"""The mutable working copy of one run partition while events are applied to it (fold internals).

Every state change goes through ``put_task``/``put_run`` so the transition tables are consulted and
``row_version`` is stamped with the event that made the change.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from servo.core.ids import dispatch_id
from servo.core.rows import RunRow, TaskRow, replace_row
from servo.core.state import RunPartition
from servo.core.states import (
    RUN_ACTIVE,
    RUN_TRANSITIONS,
    TASK_TERMINAL,
    TASK_TRANSITIONS,
    RunState,
    TaskState,
    check_run_transition,
    check_task_transition,
)

_TERMINAL_VALUES = frozenset(s.value for s in TASK_TERMINAL)
# The moves the transition tables allow, as (from, to) values: a set lookup an update, where the
# check itself builds two enums; a move not in here is refused by the check, which says why.
_TASK_MOVES = frozenset((f.value, t.value) for f, targets in TASK_TRANSITIONS.items() for t in targets)
_RUN_MOVES = frozenset((f.value, t.value) for f, targets in RUN_TRANSITIONS.items() for t in targets)
_COUNTER = {
    TaskState.SUCCEEDED.value: "tasks_succeeded",
    TaskState.FAILED.value: "tasks_failed",
    TaskState.SKIPPED.value: "tasks_skipped",
    TaskState.CANCELLED.value: "tasks_cancelled",
}


def is_terminal(task: TaskRow) -> bool:
    return task.state in _TERMINAL_VALUES


def final_run_state(run: RunRow) -> RunState:
    """The state a run ends in once every task is terminal (behavior §1.2, §8; design §6)."""
    if run.timed_out:
        return RunState.TIMED_OUT
    # A cancel ends the run CANCELLED even if the tasks left running all succeed (behavior §8).
    if run.cancel_requested or run.tasks_cancelled:
        return RunState.CANCELLED
    if run.tasks_failed:
        return RunState.FAILED
    return RunState.SUCCEEDED  # skips alone never fail a run


@dataclass(slots=True)
class FoldContext:
    """One partition being folded, and the event being applied to it."""

    p: RunPartition
    event_id: str = ""
    ts: int = 0
    # (task_key, attempt, attempt_id) -> the newest id of a cancelled finish of that attempt among the
    # events this fold applies: a success it comes after never applies (see ``fold`` docstring).
    cancels: dict[tuple[str, int, str], str] = field(default_factory=dict)
    _downstream: dict[str, list[str]] | None = field(default=None, repr=False)

    def downstream(self, task_key: str) -> list[str]:
        # Edges never change shape after PlanCreated, so the index is built once per fold call.
        if self._downstream is None:
            index: dict[str, list[str]] = {}
            for up, down in self.p.deps:
                index.setdefault(up, []).append(down)
            self._downstream = index
        return self._downstream.get(task_key, [])

    def invalidate_edges(self) -> None:
        self._downstream = None

    def put_task(self, task: TaskRow, **changes: Any) -> TaskRow:
        new_state = changes.get("state")
        if new_state is not None and new_state != task.state and (task.state, new_state) not in _TASK_MOVES:
            check_task_transition(task.state, new_state)
        row = replace_row(task, row_version=self.event_id, **changes)
        self.p.tasks[task.task_key] = row
        return row

    def put_run(self, **changes: Any) -> RunRow:
        run = self.p.run
        assert run is not None
        new_state = changes.get("state")
        if new_state is not None and new_state != run.state and (run.state, new_state) not in _RUN_MOVES:
            check_run_transition(run.state, new_state)
        row = replace_row(run, row_version=self.event_id, **changes)
        self.p.run = row
        return row

    def end_task(self, task: TaskRow, state: TaskState, **changes: Any) -> TaskRow:
        """Move a task to a terminal state: completed_at, counters, and its outbox rows go away."""
        row = self.put_task(task, state=state.value, completed_at=self.ts, **changes)
        # A terminal task must never be (re)dispatched: drop every pending dispatch of it.
        if self.p.outbox:
            first = dispatch_id(task.run_id, task.task_key, 1)
            self.p.outbox.pop(first, None)
            stem = first[:-1]  # the id of each later attempt differs in its number only
            for attempt in range(2, max(task.attempt, task.max_attempts) + 2):
                self.p.outbox.pop(f"{stem}{attempt}", None)
        run = self.p.run
        if run is not None:
            counter = _COUNTER[state.value]
            self.put_run(tasks_completed=run.tasks_completed + 1, **{counter: getattr(run, counter) + 1})
        return row

    def propagate(self, task_key: str, resolution: str) -> None:
        """BFS from a task that ended without success (behavior §2.1): edges unsatisfied, dependents end."""
        queue = deque([(task_key, resolution)])
        while queue:
            up, res = queue.popleft()
            derived = TaskState.CANCELLED if res == TaskState.CANCELLED.value else TaskState.SKIPPED
            for down in self.downstream(up):
                edge = self.p.deps[(up, down)]
                self.p.deps[(up, down)] = replace_row(
                    edge, satisfied=False, resolution=res, satisfied_at=self.ts, row_version=self.event_id
                )
                dependent = self.p.tasks[down]
                if is_terminal(dependent):
                    continue  # a terminal dependent stops this branch
                self.end_task(dependent, derived)
                queue.append((down, derived.value))

    def satisfy(self, task: TaskRow) -> None:
        """Mark every outgoing edge of a succeeded task satisfied; count each edge once (ADR-022)."""
        for down in self.downstream(task.task_key):
            edge = self.p.deps[(task.task_key, down)]
            was = edge.satisfied
            self.p.deps[(task.task_key, down)] = replace_row(
                edge,
                satisfied=True,
                resolution="SUCCESS",
                satisfied_at=self.ts,
                satisfying_attempt=task.attempt,
                row_version=self.event_id,
            )
            if was:
                continue
            dependent = self.p.tasks[down]
            count = dependent.deps_satisfied_count + 1
            if count == dependent.deps_total and dependent.state == TaskState.BLOCKED.value:
                self.put_task(
                    dependent, deps_satisfied_count=count, state=TaskState.READY.value, ready_at=self.ts
                )
            else:
                self.put_task(dependent, deps_satisfied_count=count)

    def cancel_waiting(self) -> None:
        """Cancel every non-terminal task that is not RUNNING (behavior §8); RUNNING ones finish."""
        for task in list(self.p.tasks.values()):
            if not is_terminal(task) and task.state != TaskState.RUNNING.value:
                self.end_task(task, TaskState.CANCELLED)

    def check_run_complete(self) -> None:
        """End the run once every task is terminal; a plan-less run ends only by cancel/timeout."""
        run = self.p.run
        if run is None or RunState(run.state) not in RUN_ACTIVE or run.tasks_completed != run.tasks_total:
            return
        if run.tasks_total == 0 and not run.cancel_requested:
            return
        self.put_run(state=final_run_state(run).value, completed_at=self.ts)
