"""Hypothesis: valid histories fold to one state whatever the order, duplication or batching (design §5.2),
and no reachable state breaks the transition tables or the fold's bookkeeping."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st
from servo.core import fold as fold_module
from servo.core.events import Event, RunTimedOut
from servo.core.fold import fold, fold_run
from servo.core.ids import UlidFactory, dispatch_id
from servo.core.state import FoldState, RunPartition
from servo.core.states import (
    RUN_TERMINAL,
    TASK_TERMINAL,
    RunState,
    TaskState,
    check_run_transition,
    check_task_transition,
    public_run_state,
    public_task_state,
)

from tests.core.test_fold import TENANT, WS, History

RUNS = ("01HZZZZZZZZZZZZZZZZZZZRUNA", "01HZZZZZZZZZZZZZZZZZZZRUNB")
TERMINAL = {s.value for s in TASK_TERMINAL}


def _graph(data: st.DataObject, n: int) -> dict[str, list[str]]:
    keys = [f"a.t{i}" for i in range(n)]
    return {
        k: [keys[j] for j in range(i) if data.draw(st.booleans(), label=f"edge {j}->{i}")]
        for i, k in enumerate(keys)
    }


def _actions(h: History, p: RunPartition, past: list[Event]) -> list[tuple[str, Any]]:
    """Every fact a correct system could append next for this run."""
    out: list[tuple[str, Any]] = []
    if h.late:
        out.append(("write_late", None))
    run = p.run
    if run is None or RunState(run.state) in RUN_TERMINAL:
        return out
    for key, t in sorted(p.tasks.items()):
        if t.state == "READY":
            out.append(("dispatch", (key, max(1, t.attempt))))
        elif t.state == "RETRY_WAIT":
            out.append(("dispatch", (key, t.attempt + 1)))
        elif t.state == "DISPATCHED":
            out += [("start", (key, t.attempt)), ("finish_ok", (key, t.attempt))]
        elif t.state == "RUNNING":
            out += [("heartbeat", (key, t.attempt)), ("finish_ok", (key, t.attempt))]
            out += [("fail_retryable", (key, t.attempt)), ("fail_fatal", (key, t.attempt))]
            out += [("finish_cancelled", (key, t.attempt)), ("start_forged", (key, t.attempt))]
        if run.cancel_requested and t.state in ("DISPATCHED", "RUNNING"):
            # The sweep forces the cancel after the grace period, while the worker's success, minted
            # just before, is still on its way to the ledger.
            out.append(("force_cancel_past_a_late_success", (key, t.attempt)))
    for did, row in sorted(p.outbox.items()):
        if row.status == "PENDING":
            out.append(("ack", did))
    if past:
        out.append(("duplicate", None))
    return out


def _do(h: History, action: str, arg: Any, past: list[Event], data: st.DataObject) -> Event:
    if action == "dispatch":
        return h.dispatch(*arg)
    if action == "ack":
        task, attempt = arg.split(":")[2], int(arg.split(":")[3])
        return h.ack(task, attempt)
    if action == "start":
        return h.start(*arg)
    if action == "start_forged":
        return h.start(arg[0], arg[1] + 0, aid="att_forged")
    if action == "heartbeat":
        return h.heartbeat(*arg)
    if action == "finish_ok":
        return h.finish(arg[0], "succeeded", arg[1])
    if action == "finish_cancelled":
        return h.finish(arg[0], "cancelled", arg[1])
    if action == "fail_retryable":
        return h.fail(arg[0], arg[1], category="INFRASTRUCTURE")
    if action == "fail_fatal":
        return h.fail(arg[0], arg[1], category="CONFIGURATION")
    if action == "cancel":
        return h.cancel()
    if action == "timeout":
        return h.add(RunTimedOut(h.run, "run_timeout"))
    if action == "force_cancel_past_a_late_success":
        success = h.finish(arg[0], "succeeded", arg[1])
        h.events.remove(success)
        h.late.append(success)
        error = {"category": "CANCELLED", "code": "CANCEL_GRACE_EXPIRED", "message": "grace expired"}
        return h.finish(arg[0], "cancelled", arg[1], error=error)
    if action == "write_late":
        late = h.late.pop(0)
        h.events.append(late)
        return late
    # Same fact, new event id: a duplicate delivery through another writer.
    original = data.draw(st.sampled_from(past), label="duplicate of")
    return h.add(original.data, event_type=original.event_type)


def _check_invariants(p: RunPartition) -> None:
    run = p.run
    assert run is not None
    states = Counter(t.state for t in p.tasks.values())
    assert set(states) <= {s.value for s in TaskState}
    for t in p.tasks.values():
        public_task_state(t.state)
        incoming = [e for (up, down), e in p.deps.items() if down == t.task_key]
        assert t.deps_total == len(incoming)
        assert t.deps_satisfied_count == sum(e.satisfied for e in incoming)
        if t.state == "READY":
            assert all(e.satisfied for e in incoming)
        if t.state == "RETRY_WAIT":
            assert t.retry_not_before is not None and t.attempt < t.max_attempts
        if t.state in TERMINAL:
            assert t.completed_at is not None
            assert not any(row.task_key == t.task_key for row in p.outbox.values())
        if t.state == "SUCCEEDED":
            assert all(e.satisfied for (up, _), e in p.deps.items() if up == t.task_key)
        if t.state in ("FAILED", "SKIPPED"):
            assert all(e.resolution == t.state for (up, _), e in p.deps.items() if up == t.task_key)
    terminal = sum(n for s, n in states.items() if s in TERMINAL)
    assert run.tasks_total == len(p.tasks)
    assert run.tasks_completed == terminal
    assert (run.tasks_succeeded, run.tasks_failed, run.tasks_skipped, run.tasks_cancelled) == (
        states["SUCCEEDED"], states["FAILED"], states["SKIPPED"], states["CANCELLED"],
    )  # fmt: skip
    finished = RunState(run.state) in RUN_TERMINAL
    assert finished == (terminal == len(p.tasks))
    assert (run.completed_at is not None) == finished
    if run.cancel_requested:
        assert all(t.state in TERMINAL or t.state == "RUNNING" for t in p.tasks.values())
        assert run.state != "SUCCEEDED" and run.state != "FAILED"
    public_run_state(run, p.tasks.values())


def _check_moves(before: RunPartition, after: RunPartition) -> None:
    """One event may make several moves (propagation), but each task/run moves at most once, legally."""
    for key, task in after.tasks.items():
        old = before.tasks.get(key)
        if old is not None and old.state in TERMINAL:
            assert task.state == old.state, f"terminal {key} moved {old.state} -> {task.state}"
        if old is not None and old.state != task.state:
            check_task_transition(old.state, task.state)
    if before.run is not None and after.run is not None and before.run.state != after.run.state:
        check_run_transition(before.run.state, after.run.state)


def _snapshot(state: FoldState) -> dict[str, tuple[Any, ...]]:
    return {
        r: (p.run, p.tasks, p.deps, p.timers, p.outbox, p.idempotency, sorted(p.events))
        for r, p in state.runs.items()
    }


def _simulate(data: st.DataObject) -> tuple[dict[str, RunPartition], list[Event]]:
    """Runs driven through random actions, each event folded as it is written: the partitions
    reached and every event written."""
    ids = UlidFactory(lambda n: bytes(n))
    n_runs = data.draw(st.integers(1, 2), label="runs")
    histories = [History(run=RUNS[i], ids=ids) for i in range(n_runs)]
    partitions: dict[str, RunPartition] = {}
    for h in histories:
        h.trigger()
        graph = _graph(data, data.draw(st.integers(1, 5), label="tasks"))
        h.plan(graph, max_attempts=data.draw(st.integers(1, 3), label="max_attempts"))
        partitions[h.run] = fold_run(None, h.run, h.events)
    all_events: list[Event] = [e for h in histories for e in h.events]
    for _ in range(data.draw(st.integers(10, 60), label="steps")):
        h = data.draw(st.sampled_from(histories), label="run")
        choices = _actions(h, partitions[h.run], h.events)
        run = partitions[h.run].run
        # Stopping a run is offered rarely so most histories get deep into retries and propagation.
        live = run is not None and not run.cancel_requested and RunState(run.state) not in RUN_TERMINAL
        if live and data.draw(st.integers(0, 12), label="stop?") == 0:
            choices = [("cancel", None), ("timeout", None)]
        if not choices:
            continue
        action, arg = data.draw(st.sampled_from(choices), label="action")
        note_event(action)
        event = _do(h, action, arg, h.events, data)
        all_events.append(event)
        before = partitions[h.run]
        after = partitions[h.run] = fold_run(before, h.run, [event])
        _check_moves(before, after)
        _check_invariants(after)

    for p in partitions.values():
        note_event(f"run ends {p.run.state if p.run else None}")
    return partitions, all_events


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_permutation_duplication_and_split_folds_like_one_clean_fold(data: st.DataObject) -> None:
    partitions, all_events = _simulate(data)
    clean = fold(FoldState(TENANT, WS), sorted(all_events, key=lambda e: e.event_id))
    assert _snapshot(clean) == {r: _snapshot_one(p) for r, p in partitions.items()}

    shuffled = data.draw(st.permutations(all_events), label="order")
    extra = data.draw(st.lists(st.sampled_from(all_events), max_size=5), label="redelivered")
    stream = shuffled + extra
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6), label="cuts"))
    state = FoldState(TENANT, WS)
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        state = fold(state, stream[lo:hi])
    assert _snapshot(state) == _snapshot(clean)


def _folded_a_little_late(data: st.DataObject, max_delay: int, max_batch: int) -> tuple[FoldState, FoldState]:
    """A history whose events each reach the ledger up to ``max_delay`` places late, folded in
    batches of up to ``max_batch``, and its clean fold."""
    _, all_events = _simulate(data)
    ordered = sorted(all_events, key=lambda e: e.event_id)
    delays = data.draw(st.lists(st.integers(0, max_delay), min_size=len(ordered), max_size=len(ordered)))
    arrival = sorted(range(len(ordered)), key=lambda i: (i + delays[i], i))
    stream = [ordered[i] for i in arrival]
    state = FoldState(TENANT, WS)
    lo = 0
    while lo < len(stream):
        hi = lo + data.draw(st.integers(1, max_batch), label="batch")
        state = fold(state, stream[lo:hi])
        lo = hi
    return state, fold(FoldState(TENANT, WS), ordered)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_events_a_little_out_of_order_in_small_batches_fold_like_one_clean_fold(
    data: st.DataObject,
) -> None:
    # What writers under load produce: each event reaches the ledger up to a few places late, and
    # the compactor folds small batches one on another (the late ones on the in-memory checkpoint).
    state, clean = _folded_a_little_late(data, 4, 4)
    assert _snapshot(state) == _snapshot(clean)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_batches_folded_on_checkpoints_kept_inside_the_batch_before_fold_like_one_clean_fold(
    data: st.DataObject,
) -> None:
    # Checkpoints a place or two before a batch's newest event (big runs keep them some 16 and 64
    # places back; these histories are small): the next batch folds on whichever serves it.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fold_module, "_CHECKPOINT_DEPTHS", (1, 2))
        patch.setattr(fold_module, "_MAX_CHECKPOINTS", 3)
        state, clean = _folded_a_little_late(data, 6, 8)
    assert _snapshot(state) == _snapshot(clean)


def _snapshot_one(p: RunPartition) -> tuple[Any, ...]:
    return (p.run, p.tasks, p.deps, p.timers, p.outbox, p.idempotency, sorted(p.events))


def test_simulator_reaches_the_interesting_states() -> None:
    """Guard against a simulator that never leaves the happy path."""
    h = History(run=RUNS[0])
    h.trigger()
    h.plan({"a.t0": [], "a.t1": ["a.t0"]}, max_attempts=2)
    h.dispatch("a.t0")
    h.start("a.t0")
    h.fail("a.t0", category="INFRASTRUCTURE")
    p = fold_run(None, h.run, h.events)
    assert ("dispatch", ("a.t0", 2)) in _actions(h, p, h.events)
    assert dispatch_id(h.run, "a.t0", 1) not in p.outbox
