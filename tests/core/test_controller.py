"""The controller decides from the projection alone; every decision is checked here without I/O."""

from __future__ import annotations

from dataclasses import replace

from servo.core import controller as ctl
from servo.core.ids import attempt_id, dispatch_id, timer_id
from servo.core.rows import DepRow, OutboxRow, RunRow, TaskRow
from servo.core.state import RunPartition

RUN = "01JDXYZ0000000000000000000"
NOW = 1_800_000_000_000


def run_row(**kw: object) -> RunRow:
    base = RunRow(
        run_id=RUN,
        plan_id="p",
        state="RUNNING",
        run_key=None,
        cancel_requested=False,
        tasks_total=1,
        tasks_completed=0,
        tasks_succeeded=0,
        tasks_failed=0,
        tasks_skipped=0,
        tasks_cancelled=0,
        triggered_at=NOW - 60_000,
        completed_at=None,
        labels=None,
        code_version=None,
        row_version="01",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def task_row(key: str = "ns.a", **kw: object) -> TaskRow:
    base = TaskRow(
        run_id=RUN,
        task_key=key,
        state="READY",
        attempt=0,
        attempt_id=None,
        started_at=None,
        completed_at=None,
        error_message=None,
        deps_total=0,
        deps_satisfied_count=0,
        max_attempts=3,
        heartbeat_timeout_sec=90,
        last_heartbeat_at=None,
        ready_at=NOW - 1000,
        asset_key=key,
        partition_key=None,
        row_version="01",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def partition(*tasks: TaskRow, run: RunRow | None = None, outbox: tuple[OutboxRow, ...] = ()) -> RunPartition:
    return RunPartition(
        run_id=RUN,
        run=run or run_row(),
        tasks={t.task_key: t for t in tasks},
        outbox={o.dispatch_id: o for o in outbox},
    )


def outbox_row(attempt: int, status: str = "PENDING", created_at: int = NOW, key: str = "ns.a") -> OutboxRow:
    did = dispatch_id(RUN, key, attempt)
    return OutboxRow(RUN, key, attempt, did, None, status, attempt_id(did), "default-queue", created_at, "02")


def test_ready_task_without_outbox_row_is_dispatched_as_attempt_1() -> None:
    did = dispatch_id(RUN, "ns.a", 1)
    assert ctl.after_publish(partition(task_row()), NOW) == [
        ctl.RequestDispatch(RUN, "ns.a", 1, attempt_id(did), did)
    ]


def test_ready_task_with_its_outbox_row_is_not_dispatched_twice() -> None:
    assert ctl.after_publish(partition(task_row(), outbox=(outbox_row(1),)), NOW) == []


def test_pending_outbox_row_of_a_dispatched_task_is_enqueued() -> None:
    task = task_row(state="DISPATCHED", attempt=1, attempt_id=attempt_id(dispatch_id(RUN, "ns.a", 1)))
    decisions = ctl.after_publish(partition(task, outbox=(outbox_row(1),)), NOW)
    assert decisions == [
        ctl.EnqueueDispatch(
            RUN, "ns.a", 1, task.attempt_id or "", dispatch_id(RUN, "ns.a", 1), "default-queue"
        )
    ]


def test_created_outbox_row_is_not_enqueued_again_after_publish() -> None:
    task = task_row(state="DISPATCHED", attempt=1, attempt_id=attempt_id(dispatch_id(RUN, "ns.a", 1)))
    assert ctl.after_publish(partition(task, outbox=(outbox_row(1, "CREATED"),)), NOW) == []


def test_retry_wait_before_its_deadline_schedules_a_timer_and_never_dispatches_early() -> None:
    due = NOW + 10_000
    task = task_row(state="RETRY_WAIT", attempt=1, retry_not_before=due)
    decisions = ctl.after_publish(partition(task), NOW)
    assert decisions == [
        ctl.ScheduleTimer(timer_id("retry", RUN, "ns.a", 1, due // 1000), "RETRY", RUN, "ns.a", 1, due)
    ]


def test_retry_wait_after_its_deadline_dispatches_the_next_attempt() -> None:
    task = task_row(state="RETRY_WAIT", attempt=1, retry_not_before=NOW - 1)
    (decision,) = ctl.after_publish(partition(task), NOW)
    assert isinstance(decision, ctl.RequestDispatch) and decision.attempt == 2


def test_retry_wait_without_deadline_is_bootstrapped_at_once() -> None:
    (decision,) = ctl.after_publish(partition(task_row(state="RETRY_WAIT", attempt=2)), NOW)
    assert isinstance(decision, ctl.RequestDispatch) and decision.attempt == 3


def test_a_cancelling_or_terminal_run_never_dispatches() -> None:
    assert ctl.after_publish(partition(task_row(), run=run_row(cancel_requested=True)), NOW) == []
    assert ctl.after_publish(partition(task_row(), run=run_row(state="FAILED")), NOW) == []
    assert ctl.sweep(partition(task_row(), run=run_row(state="CANCELLED")), NOW) == []


def running(**kw: object) -> TaskRow:
    aid = attempt_id(dispatch_id(RUN, "ns.a", 1))
    return task_row(state="RUNNING", attempt=1, attempt_id=aid, started_at=NOW - 200_000, **kw)


def test_sweep_fails_a_silent_attempt_with_heartbeat_timeout_retryable() -> None:
    (decision,) = ctl.sweep(partition(running(last_heartbeat_at=NOW - 91_000)), NOW)
    assert isinstance(decision, ctl.FailAttempt)
    assert (decision.code, decision.category, decision.retryable) == (
        "HEARTBEAT_TIMEOUT",
        "INFRASTRUCTURE",
        True,
    )


def test_a_forced_end_carries_the_asset_and_the_attempts_dispatch_in_whole_seconds() -> None:
    """So it reaches the asset catalog ranked as the worker's report of the attempt (its token's iat)."""
    task = running(
        last_heartbeat_at=NOW - 91_000, partition_key="date=d:2025-01-05", code_version="f1",
        dispatched_at=NOW - 200_123,
    )  # fmt: skip
    for run in (run_row(), run_row(cancel_requested=True, cancel_requested_at=NOW - 31_000)):
        (decision,) = ctl.sweep(partition(task, run=run), NOW)
        assert isinstance(decision, ctl.FailAttempt)
        assert (decision.asset_key, decision.partition_key, decision.code_version) == (
            "ns.a",
            "date=d:2025-01-05",
            "f1",
        )
        assert decision.dispatched_at == NOW - 201_000
    (unknown,) = ctl.sweep(partition(replace(task, dispatched_at=None)), NOW)
    assert isinstance(unknown, ctl.FailAttempt) and unknown.dispatched_at is None


def test_sweep_leaves_a_heartbeating_attempt_alone() -> None:
    assert ctl.sweep(partition(running(last_heartbeat_at=NOW - 1_000)), NOW) == []


def test_sweep_times_out_an_attempt_past_its_asset_timeout() -> None:
    (decision,) = ctl.sweep(partition(running(last_heartbeat_at=NOW, timeout_seconds=100)), NOW)
    assert isinstance(decision, ctl.FailAttempt) and decision.category == "TIMEOUT"


def test_sweep_forces_cancel_after_the_grace_period_only() -> None:
    task = running(last_heartbeat_at=NOW)
    early = run_row(cancel_requested=True, cancel_requested_at=NOW - 10_000)
    assert ctl.sweep(partition(task, run=early), NOW) == []
    late = run_row(cancel_requested=True, cancel_requested_at=NOW - 31_000)
    (decision,) = ctl.sweep(partition(task, run=late), NOW)
    assert isinstance(decision, ctl.FailAttempt)
    assert (decision.outcome, decision.retryable) == ("CANCELLED", False)


def test_sweep_times_out_the_run() -> None:
    decisions = ctl.sweep(partition(running(last_heartbeat_at=NOW), run=run_row(timeout_at=NOW - 1)), NOW)
    assert ctl.TimeOutRun(RUN, "run timeout exceeded") in decisions


def test_sweep_re_enqueues_a_dispatch_no_worker_started_under_a_fresh_name() -> None:
    aid = attempt_id(dispatch_id(RUN, "ns.a", 1))
    task = task_row(state="DISPATCHED", attempt=1, attempt_id=aid)
    stale = outbox_row(1, "CREATED", created_at=NOW - 11 * 60_000)
    (decision,) = ctl.sweep(partition(task, outbox=(stale,)), NOW)
    assert isinstance(decision, ctl.EnqueueDispatch) and decision.repair_of == stale.row_version
    fresh = outbox_row(1, "CREATED", created_at=NOW - 60_000)
    assert ctl.sweep(partition(task, outbox=(fresh,)), NOW) == []


def test_sweep_requests_a_missing_outbox_row_for_a_dispatched_task() -> None:
    aid = attempt_id(dispatch_id(RUN, "ns.a", 1))
    (decision,) = ctl.sweep(partition(task_row(state="DISPATCHED", attempt=1, attempt_id=aid)), NOW)
    assert isinstance(decision, ctl.RequestDispatch) and decision.attempt == 1


def test_decisions_are_deterministic() -> None:
    part = partition(task_row(), task_row("ns.b", state="RETRY_WAIT", attempt=1, retry_not_before=NOW + 5))
    assert ctl.sweep(part, NOW) == ctl.sweep(part, NOW)


# -- dispatch by the completing callback (issue 21) ------------------------------------------------


def _dep(up: str, down: str, satisfied: bool) -> DepRow:
    return DepRow(RUN, up, down, satisfied, "SUCCESS" if satisfied else None, NOW if satisfied else None, 1)


def _after(*tasks: TaskRow, deps: tuple[DepRow, ...], run: RunRow | None = None) -> RunPartition:
    part = partition(*tasks, run=run)
    part.deps = {(d.upstream_task_key, d.downstream_task_key): d for d in deps}
    return part


RUNNING_A = task_row("ns.a", state="RUNNING", attempt=1, attempt_id="at1", started_at=NOW - 2000)
DONE_A = replace(RUNNING_A, state="SUCCEEDED", completed_at=NOW)


def test_a_completion_dispatches_the_downstream_it_made_ready() -> None:
    part = _after(
        DONE_A,
        task_row("ns.b", deps_total=1, deps_satisfied_count=1),
        task_row("ns.c", state="BLOCKED", deps_total=1, ready_at=None),
        deps=(_dep("ns.a", "ns.b", True), _dep("ns.b", "ns.c", False)),
    )
    assert ctl.after_completion(part, RUNNING_A, NOW) == [ctl.after_publish(part, NOW)[0]]
    (decision,) = ctl.after_completion(part, RUNNING_A, NOW)
    assert (decision.task_key, decision.attempt) == ("ns.b", 1)
    assert decision.dispatch_id == dispatch_id(RUN, "ns.b", 1)  # the compactor's own id and name


def test_a_ready_task_the_completion_did_not_unblock_is_left_to_the_compactor() -> None:
    part = _after(DONE_A, task_row("ns.other"), deps=())
    assert ctl.after_publish(part, NOW) != []
    assert ctl.after_completion(part, RUNNING_A, NOW) == []


def test_a_downstream_still_waiting_on_another_upstream_is_not_dispatched() -> None:
    part = _after(
        DONE_A,
        task_row("ns.b", state="RUNNING", attempt=1, attempt_id="bt1"),
        task_row("ns.d", state="BLOCKED", deps_total=2, deps_satisfied_count=1, ready_at=None),
        deps=(_dep("ns.a", "ns.d", True), _dep("ns.b", "ns.d", False)),
    )
    assert ctl.after_completion(part, RUNNING_A, NOW) == []


def test_nothing_is_dispatched_by_a_completion_of_a_cancelling_run_or_a_failure() -> None:
    ready_b = task_row("ns.b", deps_total=1, deps_satisfied_count=1)
    deps = (_dep("ns.a", "ns.b", True),)
    cancelling = _after(DONE_A, ready_b, deps=deps, run=run_row(cancel_requested=True))
    assert ctl.after_completion(cancelling, RUNNING_A, NOW) == []
    failed = _after(replace(DONE_A, state="FAILED"), ready_b, deps=deps)
    assert ctl.after_completion(failed, RUNNING_A, NOW) == []


def test_a_completion_the_sweep_may_have_beaten_dispatches_nothing() -> None:
    # The sweep fails an attempt silent past its heartbeat timeout; if it did so before this success
    # was written, the fold keeps its failure and ignores the success. Only an attempt well inside
    # its limits (half of them) is one no sweep can have given up on first.
    ready_b = task_row("ns.b", deps_total=1, deps_satisfied_count=1)
    deps = (_dep("ns.a", "ns.b", True),)
    silent = replace(RUNNING_A, started_at=NOW - 50_000)  # 90 s heartbeat timeout
    assert ctl.after_completion(_after(DONE_A, ready_b, deps=deps), silent, NOW) == []
    beating = replace(silent, last_heartbeat_at=NOW - 10_000)
    assert ctl.after_completion(_after(DONE_A, ready_b, deps=deps), beating, NOW) != []
    near_timeout = replace(beating, timeout_seconds=90)  # 50 s of 90 used: past half
    assert ctl.after_completion(_after(DONE_A, ready_b, deps=deps), near_timeout, NOW) == []


def test_a_wide_fan_out_is_left_to_the_compactor() -> None:
    children = [task_row(f"ns.c{i}", deps_total=1, deps_satisfied_count=1) for i in range(9)]
    part = _after(DONE_A, *children, deps=tuple(_dep("ns.a", c.task_key, True) for c in children))
    assert ctl.after_completion(part, RUNNING_A, NOW) == []
    wider = ctl.ControllerConfig(callback_dispatch_max=9)
    assert len(ctl.after_completion(part, RUNNING_A, NOW, wider)) == 9
