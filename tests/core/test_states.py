"""The state machines as data: every (from, to) pair is enumerated against the tables."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from servo.core.errors import InvalidTransition
from servo.core.rows import RunRow, TaskRow
from servo.core.states import (
    RUN_ACTIVE,
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    TASK_ACTIVE,
    TASK_RANK,
    TASK_TERMINAL,
    TASK_TRANSITIONS,
    TASK_WAITING,
    RunState,
    TaskState,
    check_run_transition,
    check_task_transition,
    public_run_state,
    public_task_state,
)

T = TaskState
R = RunState

# The allowed moves written out by hand from behavior §1.1/§1.2 (+ design §6), so the test is an
# independent statement of the tables rather than a re-reading of them.
EXPECTED_TASK = {
    (T.PLANNED, T.BLOCKED), (T.PLANNED, T.READY), (T.PLANNED, T.RUNNING),
    (T.PLANNED, T.SKIPPED), (T.PLANNED, T.CANCELLED),
    (T.BLOCKED, T.READY), (T.BLOCKED, T.RUNNING), (T.BLOCKED, T.SKIPPED), (T.BLOCKED, T.CANCELLED),
    (T.READY, T.DISPATCHED), (T.READY, T.RUNNING), (T.READY, T.SKIPPED), (T.READY, T.CANCELLED),
    (T.DISPATCHED, T.DISPATCHED), (T.DISPATCHED, T.RUNNING), (T.DISPATCHED, T.RETRY_WAIT),
    (T.DISPATCHED, T.SUCCEEDED), (T.DISPATCHED, T.FAILED), (T.DISPATCHED, T.SKIPPED),
    (T.DISPATCHED, T.CANCELLED),
    (T.RUNNING, T.RUNNING), (T.RUNNING, T.RETRY_WAIT), (T.RUNNING, T.SUCCEEDED), (T.RUNNING, T.FAILED),
    (T.RUNNING, T.SKIPPED), (T.RUNNING, T.CANCELLED),
    (T.RETRY_WAIT, T.DISPATCHED), (T.RETRY_WAIT, T.RUNNING), (T.RETRY_WAIT, T.SKIPPED),
    (T.RETRY_WAIT, T.CANCELLED),
}  # fmt: skip
EXPECTED_RUN = {
    (R.TRIGGERED, R.RUNNING), (R.TRIGGERED, R.CANCELLED), (R.TRIGGERED, R.TIMED_OUT),
    (R.RUNNING, R.SUCCEEDED), (R.RUNNING, R.FAILED), (R.RUNNING, R.CANCELLED), (R.RUNNING, R.TIMED_OUT),
}  # fmt: skip


@pytest.mark.parametrize(("frm", "to"), list(itertools.product(TaskState, TaskState)))
def test_every_task_pair(frm: TaskState, to: TaskState) -> None:
    if (frm, to) in EXPECTED_TASK:
        check_task_transition(frm, to)
        assert to in TASK_TRANSITIONS[frm]
    else:
        with pytest.raises(InvalidTransition) as info:
            check_task_transition(frm, to)
        assert info.value.details == {"entity": "task", "from": frm.value, "to": to.value}


@pytest.mark.parametrize(("frm", "to"), list(itertools.product(RunState, RunState)))
def test_every_run_pair(frm: RunState, to: RunState) -> None:
    if (frm, to) in EXPECTED_RUN:
        check_run_transition(frm, to)
    else:
        with pytest.raises(InvalidTransition):
            check_run_transition(frm, to)


def test_transition_checks_accept_wire_strings_and_reject_unknown_states() -> None:
    check_task_transition("READY", "DISPATCHED")
    with pytest.raises(InvalidTransition):
        check_task_transition("READY", "BOGUS")
    with pytest.raises(InvalidTransition):
        check_run_transition("NOPE", "RUNNING")


def test_terminal_states_are_final() -> None:
    for s in TASK_TERMINAL:
        assert TASK_TRANSITIONS[s] == frozenset()
    for r in RUN_TERMINAL:
        assert RUN_TRANSITIONS[r] == frozenset()


def test_named_sets_cover_the_enums() -> None:
    assert set(TaskState) == TASK_TERMINAL | TASK_ACTIVE | TASK_WAITING
    assert not (TASK_TERMINAL & TASK_ACTIVE or TASK_TERMINAL & TASK_WAITING or TASK_ACTIVE & TASK_WAITING)
    assert set(RunState) == RUN_TERMINAL | RUN_ACTIVE
    assert not RUN_TERMINAL & RUN_ACTIVE
    assert set(TASK_TRANSITIONS) == set(TaskState)
    assert set(RUN_TRANSITIONS) == set(RunState)


def test_merge_ranks() -> None:
    assert [TASK_RANK[s] for s in TaskState] == [0, 1, 2, 3, 4, 5, 10, 11, 12, 13]
    assert all(TASK_RANK[t] >= 10 for t in TASK_TERMINAL)


@pytest.mark.parametrize(
    ("internal", "public"),
    [
        (T.PLANNED, "PENDING"), (T.BLOCKED, "PENDING"), (T.RETRY_WAIT, "PENDING"),
        (T.READY, "QUEUED"), (T.DISPATCHED, "QUEUED"), (T.RUNNING, "RUNNING"),
        (T.SUCCEEDED, "SUCCEEDED"), (T.FAILED, "FAILED"), (T.SKIPPED, "SKIPPED"), (T.CANCELLED, "CANCELLED"),
    ],
)  # fmt: skip
def test_public_task_state(internal: TaskState, public: str) -> None:
    assert public_task_state(internal) == public
    assert public_task_state(internal.value) == public


def _run(state: RunState, **kw: object) -> RunRow:
    row = RunRow("r", "p", state.value, None, False, 1, 0, 0, 0, 0, 0, 0, None, None, None)
    return replace(row, **kw)  # type: ignore[arg-type]


def _task(state: TaskState, **kw: object) -> TaskRow:
    row = TaskRow("r", "a.b", state.value, 1, "att", None, None, None, 0, 0, 3, 90, None, None, None, None)
    return replace(row, **kw)  # type: ignore[arg-type]


def test_public_run_state_basic() -> None:
    assert public_run_state(_run(R.TRIGGERED), []) == "PENDING"
    assert public_run_state(_run(R.RUNNING), []) == "RUNNING"
    assert public_run_state(_run(R.RUNNING, cancel_requested=True), []) == "CANCELLING"
    assert public_run_state(_run(R.CANCELLED, cancel_requested=True), []) == "CANCELLED"
    assert public_run_state(_run(R.TIMED_OUT, cancel_requested=True, timed_out=True), []) == "TIMED_OUT"
    assert public_run_state(_run(R.FAILED), []) == "FAILED"
    assert public_run_state(_run(R.SUCCEEDED), []) == "SUCCEEDED"


def test_public_run_state_required_output_visibility() -> None:
    """Scenario 42: required output PENDING => RUNNING; FAILED => FAILED; absent => SUCCEEDED."""
    done = _run(R.SUCCEEDED)
    ok = _task(T.SUCCEEDED, requires_visible_output=True)
    assert public_run_state(done, [ok]) == "SUCCEEDED"
    assert public_run_state(done, [replace(ok, output_visibility_state="PENDING")]) == "RUNNING"
    assert public_run_state(done, [replace(ok, output_visibility_state="FAILED")]) == "FAILED"
    assert public_run_state(done, [replace(ok, output_visibility_state="VISIBLE")]) == "SUCCEEDED"
    # Not required: its visibility does not matter.
    not_required = replace(ok, requires_visible_output=False, output_visibility_state="PENDING")
    assert public_run_state(done, [not_required]) == "SUCCEEDED"
    assert public_run_state(_run(R.RUNNING), [replace(ok, output_visibility_state="FAILED")]) == "FAILED"
