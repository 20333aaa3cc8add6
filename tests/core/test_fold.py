"""The fold against behavior §11's scenarios (numbers in the test names), with design §6 overrides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from servo.core import fold as fold_module
from servo.core.errors import InvalidEvent
from servo.core.events import (
    DispatchEnqueued,
    DispatchRequested,
    EncodedEvent,
    Event,
    EventData,
    OutputVisibility,
    PlanCreated,
    RunCancelRequested,
    RunTimedOut,
    RunTriggered,
    TaskFinished,
    TaskHeartbeat,
    TaskOutputVisibilityChanged,
    TaskStarted,
    TimerEnqueued,
    TimerFired,
    TimerRequested,
    decode_event,
    encode_event,
    make_event,
)
from servo.core.fold import fold, fold_ahead, fold_further_ahead, fold_run
from servo.core.ids import UlidFactory, attempt_id, dispatch_id, timer_id, ulid_time_ms
from servo.core.state import FoldState, RunPartition
from servo.core.states import public_run_state
from servo.core.taskdef import DEFAULT_WORKER_QUEUE, TaskDef

TENANT, WS = "acme", "prod"
RUN = "01HZZZZZZZZZZZZZZZZZZZZRUN"
PLAN = "01HZZZZZZZZZZZZZZZZZZZPLAN"
T0 = 1_700_000_000_000


@dataclass
class History:
    """Builds a run's events with increasing ULIDs (event time = ULID time unless told otherwise)."""

    run: str = RUN
    now: int = T0
    events: list[Event] = field(default_factory=list)
    ids: UlidFactory = field(default_factory=lambda: UlidFactory(lambda n: bytes(n)))
    # Events minted (their ids taken) but not written yet: a worker's success delayed in flight.
    late: list[Event] = field(default_factory=list)

    def add(self, data: EventData, *, event_type: str | None = None, ts: int | None = None) -> Event:
        self.now += 1000
        event = make_event(
            data,
            event_id=self.ids.new(self.now),
            timestamp_ms=self.now if ts is None else ts,
            tenant_id=TENANT,
            workspace_id=WS,
            event_type=event_type,
        )
        self.events.append(event)
        return event

    def trigger(self, **kw: Any) -> Event:
        return self.add(RunTriggered(self.run, PLAN, {"type": "manual", "user_id": "u"}, ("a.x",), **kw))

    def plan(self, graph: Mapping[str, Iterable[str]], **task_kw: Any) -> Event:
        tasks = tuple(
            TaskDef(key=k, depends_on=tuple(sorted(v)), **task_kw) for k, v in sorted(graph.items())
        )
        return self.add(PlanCreated(self.run, PLAN, tasks))

    def aid(self, task: str, attempt: int) -> str:
        return attempt_id(dispatch_id(self.run, task, attempt))

    def dispatch(
        self, task: str, attempt: int = 1, aid: str | None = None, queue: str = DEFAULT_WORKER_QUEUE
    ) -> Event:
        did = dispatch_id(self.run, task, attempt)
        return self.add(
            DispatchRequested(self.run, task, attempt, aid or self.aid(task, attempt), did, queue)
        )

    def ack(self, task: str, attempt: int = 1) -> Event:
        return self.add(DispatchEnqueued(dispatch_id(self.run, task, attempt), f"d_{task}_{attempt}"))

    def start(self, task: str, attempt: int = 1, aid: str | None = None) -> Event:
        return self.add(TaskStarted(self.run, task, attempt, aid or self.aid(task, attempt), "w1"))

    def heartbeat(self, task: str, attempt: int = 1, aid: str | None = None, **kw: Any) -> Event:
        return self.add(TaskHeartbeat(self.run, task, attempt, aid or self.aid(task, attempt), "w1", **kw))

    def finish(
        self,
        task: str,
        outcome: str = "succeeded",
        attempt: int = 1,
        aid: str | None = None,
        event_type: str | None = None,
        **kw: Any,
    ) -> Event:
        aid = aid or self.aid(task, attempt)
        return self.add(
            TaskFinished(self.run, task, attempt, aid, "w1", outcome, **kw), event_type=event_type
        )

    def fail(self, task: str, attempt: int = 1, category: str = "USER_CODE", **kw: Any) -> Event:
        error = {"category": category, "message": "boom", **kw}
        return self.finish(task, "failed", attempt, error=error, error_message="boom")

    def run_task(self, task: str, attempt: int = 1, outcome: str = "succeeded") -> None:
        self.dispatch(task, attempt)
        self.ack(task, attempt)
        self.start(task, attempt)
        self.finish(task, outcome, attempt)

    def cancel(self, reason: str = "stop") -> Event:
        return self.add(RunCancelRequested(self.run, "user@example.com", reason))


def empty() -> FoldState:
    return FoldState(TENANT, WS)


def fold_all(events: Iterable[Event], state: FoldState | None = None) -> RunPartition:
    return fold(state or empty(), events).runs[RUN]


def snapshot(p: RunPartition) -> tuple[Any, ...]:
    """Everything a partition holds, comparable across folds."""
    return (p.run, p.tasks, p.deps, p.timers, p.outbox, p.idempotency, sorted(p.events))


def chain() -> History:
    h = History()
    h.trigger()
    h.plan({"a.a": [], "a.b": ["a.a"], "a.c": ["a.b"]})
    return h


# ------------------------------------------------------------------------------------------ scenarios


def test_01_folding_any_event_twice_changes_nothing() -> None:
    h = chain()
    h.run_task("a.a")
    h.dispatch("a.b")
    once = fold(empty(), h.events)
    twice = fold(once, h.events)
    assert snapshot(twice.runs[RUN]) == snapshot(once.runs[RUN])
    assert snapshot(fold_all(h.events + h.events)) == snapshot(once.runs[RUN])


def test_02_duplicate_success_never_double_counts() -> None:
    h = History()
    h.trigger()
    h.plan({"a.a": [], "a.b": ["a.a"], "a.c": ["a.a", "a.b"]})
    h.run_task("a.a")
    h.finish("a.a")  # a second completion of the same attempt, other event id
    p = fold_all(h.events)
    assert p.tasks["a.b"].deps_satisfied_count == 1
    assert p.tasks["a.c"].deps_satisfied_count == 1
    assert p.tasks["a.c"].state == "BLOCKED"
    assert p.run is not None and (p.run.tasks_completed, p.run.tasks_succeeded) == (1, 1)


def test_03_chain_unblocks_one_edge_at_a_time() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    p = fold_all(h.events)
    assert [p.tasks[k].state for k in ("a.a", "a.b", "a.c")] == ["RUNNING", "BLOCKED", "BLOCKED"]
    h.finish("a.a")
    p = fold_all(h.events)
    assert [p.tasks[k].state for k in ("a.a", "a.b", "a.c")] == ["SUCCEEDED", "READY", "BLOCKED"]
    assert p.tasks["a.b"].ready_at == h.now
    edge = p.deps[("a.a", "a.b")]
    assert (edge.satisfied, edge.resolution, edge.satisfying_attempt) == (True, "SUCCESS", 1)


def test_04_any_order_and_split_gives_the_same_state() -> None:
    h = chain()
    for task in ("a.a", "a.b", "a.c"):
        h.run_task(task)
    clean = snapshot(fold_all(h.events))
    reversed_state = empty()
    for event in reversed(h.events):  # every batch is a late event: re-fold each time
        reversed_state = fold(reversed_state, [event])
    assert snapshot(reversed_state.runs[RUN]) == clean
    split = fold(fold(empty(), h.events[5:]), h.events[:5])
    assert snapshot(split.runs[RUN]) == clean


def test_05_order_follows_event_id_not_timestamp() -> None:
    h = chain()
    h.dispatch("a.a")
    h.add(TaskStarted(RUN, "a.a", 1, h.aid("a.a", 1), "w"), ts=T0)  # a producer whose clock is far behind
    h.add(TaskFinished(RUN, "a.a", 1, h.aid("a.a", 1), "w", "succeeded"), ts=T0 - 50_000)
    p = fold_all(h.events)
    assert p.tasks["a.a"].state == "SUCCEEDED"
    assert p.tasks["a.a"].completed_at == T0 - 50_000


def test_06_run_triggered_after_plan_recovers_totals() -> None:
    h = History()
    h.plan({"a.a": [], "a.b": ["a.a"]})
    h.run_task("a.a")
    h.trigger()
    p = fold_all(h.events)
    assert p.run is not None
    assert (p.run.state, p.run.tasks_total, p.run.tasks_completed, p.run.tasks_succeeded) == (
        "RUNNING",
        2,
        1,
        1,
    )
    h.run_task("a.b")
    p = fold_all(h.events)
    assert p.run is not None and p.run.state == "SUCCEEDED"


def test_07_stale_finish_of_an_older_attempt_is_rejected() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a", 1)
    h.start("a.a", 2)
    h.finish("a.a", attempt=1)
    p = fold_all(h.events)
    task = p.tasks["a.a"]
    assert (task.state, task.attempt, task.completed_at) == ("RUNNING", 2, None)
    assert f"finished:{RUN}:a.a:1" not in p.idempotency  # rejected facts do not consume their key


def test_08_start_with_another_attempt_id_is_ignored_and_does_not_burn_the_key() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a", aid="att_forged")
    p = fold_all(h.events)
    assert p.tasks["a.a"].state == "DISPATCHED"
    h.start("a.a")
    assert fold_all(h.events).tasks["a.a"].state == "RUNNING"


def test_09_terminal_failure_skips_downstream_transitively() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    h.fail("a.a", retryable=False)
    p = fold_all(h.events)
    assert [p.tasks[k].state for k in ("a.a", "a.b", "a.c")] == ["FAILED", "SKIPPED", "SKIPPED"]
    assert p.deps[("a.a", "a.b")].resolution == "FAILED"
    assert p.deps[("a.b", "a.c")].resolution == "SKIPPED"
    assert p.run is not None
    assert (p.run.state, p.run.tasks_failed, p.run.tasks_skipped, p.run.tasks_completed) == (
        "FAILED",
        1,
        2,
        3,
    )
    assert p.run.completed_at == h.now


def test_10_cancelled_task_cancels_downstream() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    h.finish("a.a", "cancelled")
    p = fold_all(h.events)
    assert [p.tasks[k].state for k in ("a.a", "a.b", "a.c")] == ["CANCELLED"] * 3
    edge = p.deps[("a.a", "a.b")]
    assert (edge.satisfied, edge.resolution) == (False, "CANCELLED")
    assert p.run is not None and (p.run.state, p.run.tasks_cancelled) == ("CANCELLED", 3)


def test_11_row_version_is_the_last_event_that_changed_the_row_and_late_events_refold() -> None:
    h = chain()
    h.dispatch("a.a")
    start = h.start("a.a")
    h.heartbeat("a.a")
    done = h.finish("a.a")
    p = fold_all(h.events)
    assert p.tasks["a.a"].row_version == done.event_id
    assert p.tasks["a.c"].row_version == h.events[1].event_id  # untouched since the plan
    late = fold(fold(empty(), [e for e in h.events if e is not start]), [start])
    assert snapshot(late.runs[RUN]) == snapshot(p)


def test_11b_a_refold_keeps_stored_events_as_read_and_decodes_each_once() -> None:
    # A big run re-folded for every late event must not decode, nor later re-encode, its whole history.
    h = chain()
    h.dispatch("a.a")
    start = h.start("a.a")
    done = h.finish("a.a")
    stored = {e.event_id: EncodedEvent(encode_event(e).decode()) for e in h.events if e is not start}
    base = fold_run(None, RUN, [e for e in h.events if e is not start])
    base.events.update(stored)
    refolded = fold_run(base, RUN, [start])
    assert snapshot(refolded) == snapshot(fold_all(h.events))
    assert all(refolded.events[i] is body for i, body in stored.items())
    assert refolded.events[start.event_id] == start
    decoded = stored[done.event_id].decode()
    assert decoded == done and stored[done.event_id].decode() is decoded


def test_11f_events_given_with_their_bytes_are_kept_as_those_bytes_on_every_path() -> None:
    # A writer's own events reach its compaction with the bytes it wrote (EncodedEvent): the fold
    # applies the event and keeps the bytes, so the segment stores them without encoding again, in
    # order, when late (a re-fold) and a little late (on a checkpoint) alike.
    h = chain()
    h.dispatch("a.a")
    start = h.start("a.a")
    h.finish("a.a")

    def given(events: list[Event]) -> list[Event | EncodedEvent]:
        return [EncodedEvent(encode_event(e).decode(), e) for e in events]

    in_order = fold(empty(), given(h.events)).runs[RUN]
    late = fold_run(fold_run(None, RUN, [e for e in h.events if e is not start]), RUN, given([start]))
    for part in (in_order, late):
        assert snapshot(part) == snapshot(fold_all(h.events))
    assert all(isinstance(v, EncodedEvent) and v.event is not None for v in in_order.events.values())
    kept = late.events[start.event_id]
    assert isinstance(kept, EncodedEvent) and kept.body == encode_event(start).decode()
    with pytest.raises(InvalidEvent, match="two different events"):
        fold_run(None, RUN, [*given([start]), replace(start, timestamp_ms=1)])


def _recorded_applies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the events the fold applies from now on, in order."""
    applied: list[str] = []
    real_apply = fold_module.apply
    monkeypatch.setattr(fold_module, "apply", lambda ctx, e: applied.append(e.event_id) or real_apply(ctx, e))
    return applied


def _independent_tasks_run(n: int) -> list[Event]:
    """The events of a run of ``n`` tasks without dependencies, each run to success."""
    h = History()
    h.trigger()
    h.plan({f"a.{i}": [] for i in range(n)})
    for i in range(n):
        h.run_task(f"a.{i}")
    return h.events


def test_11c_an_event_a_little_late_folds_on_the_checkpoint_not_the_whole_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = chain()
    h.run_task("a.a")
    h.dispatch("a.b")
    ack = h.ack("a.b")
    start = h.start("a.b")
    first = fold_run(None, RUN, h.events[:-2])
    second = fold_run(first, RUN, [start])  # written before the ack it follows
    applied = _recorded_applies(monkeypatch)
    late = fold_run(second, RUN, [ack])
    assert applied == [ack.event_id, start.event_id]  # not the run's 8 earlier events again
    monkeypatch.undo()
    assert snapshot(late) == snapshot(fold_all(h.events))


def test_11d_the_checkpoint_moves_up_with_batches_that_each_hold_a_late_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under load every batch can hold an event a place late: folded each on the first checkpoint,
    # a batch would replay everything since it, a work per publish that grows with the run.
    ordered = _independent_tasks_run(6)
    part = fold_run(fold_run(None, RUN, ordered[:3]), RUN, [ordered[4]])
    # [e3, e6], [e5, e8], ...: each batch's older event was minted before the newest one folded.
    batches = [[ordered[i], ordered[i + 3]] for i in range(3, len(ordered) - 3, 2)]
    applied = _recorded_applies(monkeypatch)
    replayed = []
    for batch in batches:
        applied.clear()
        part = fold_run(part, RUN, batch)
        replayed.append(len(applied))
    monkeypatch.undo()
    assert max(replayed) <= 5, replayed  # this batch, the one before and what came between them
    folded = {e.event_id for e in [*ordered[:3], ordered[4], *(e for batch in batches for e in batch)]}
    assert snapshot(part) == snapshot(fold_all(e for e in ordered if e.event_id in folded))


def test_11e_a_batch_a_few_events_late_replays_those_few_not_the_whole_batch_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A batch's late event was being written while the batch before it was taken: it was minted a
    # few places before that batch's newest event, and folds on a checkpoint kept near its end.
    ordered = _independent_tasks_run(12)
    late = ordered[-3]
    part = fold_run(None, RUN, ordered[:2])
    part = fold_run(part, RUN, [e for e in ordered[2:] if e is not late])  # 47 events in order
    applied = _recorded_applies(monkeypatch)
    part = fold_run(part, RUN, [late])
    monkeypatch.undo()
    assert late.event_id in applied and len(applied) <= 17, len(applied)
    assert snapshot(part) == snapshot(fold_all(ordered))


def test_12_ack_before_request_keeps_both_ids() -> None:
    h = chain()
    h.ack("a.a")
    h.dispatch("a.a", queue="gpu")
    row = fold_all(h.events).outbox[dispatch_id(RUN, "a.a", 1)]
    assert (row.status, row.cloud_task_id, row.attempt_id, row.worker_queue) == (
        "CREATED", "d_a.a_1", h.aid("a.a", 1), "gpu",
    )  # fmt: skip


def test_13_start_removes_the_outbox_row_and_the_first_attempt_id_wins() -> None:
    h = chain()
    h.dispatch("a.a")
    h.dispatch("a.a", aid="att_other")
    p = fold_all(h.events)
    assert p.outbox[dispatch_id(RUN, "a.a", 1)].attempt_id == h.aid("a.a", 1)
    assert p.tasks["a.a"].attempt_id == h.aid("a.a", 1)
    h.start("a.a")
    h.ack("a.a")  # a late ack must not resurrect the row
    assert fold_all(h.events).outbox == {}


def test_17_retryable_failure_waits_then_redispatches() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    failure = h.fail("a.a")
    p = fold_all(h.events)
    task = p.tasks["a.a"]
    assert task.state == "RETRY_WAIT"
    assert task.retry_not_before == ulid_time_ms(failure.event_id) + 5_000
    assert (task.error_message, task.error_category, task.completed_at) == ("boom", "USER_CODE", None)
    h.dispatch("a.a", 2)
    p = fold_all(h.events)
    task = p.tasks["a.a"]
    assert (task.state, task.attempt, task.retry_not_before) == ("DISPATCHED", 2, None)
    assert p.outbox[dispatch_id(RUN, "a.a", 2)].status == "PENDING"


def test_17b_a_redelivered_start_of_the_failed_attempt_is_rejected() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    h.fail("a.a")
    h.dispatch("a.a", 1)  # consumed attempt: rejected
    p = fold_all(h.events)
    assert p.tasks["a.a"].state == "RETRY_WAIT"


def test_17c_a_start_folded_before_its_dispatch_still_gets_the_attempts_dispatch_time() -> None:
    """A fast worker's start can take an id older than the dispatcher's write (the dispatch is
    recognised by its token). The row still learns when this attempt was dispatched (never keeps the
    previous attempt's), which the sweep's forced end of it must carry (controller.forced_dispatched_at)."""
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    h.fail("a.a")
    h.start("a.a", 2)
    p = fold_all(h.events)
    assert (p.tasks["a.a"].state, p.tasks["a.a"].dispatched_at) == ("RUNNING", None)
    dispatched = h.dispatch("a.a", 2)
    p = fold_all(h.events)
    assert (p.tasks["a.a"].state, p.tasks["a.a"].attempt) == ("RUNNING", 2)
    assert p.tasks["a.a"].dispatched_at == dispatched.timestamp_ms
    h.dispatch("a.a", 2)  # a second request of the attempt changes nothing
    assert fold_all(h.events).tasks["a.a"] == p.tasks["a.a"]


def test_19_max_attempts_one_fails_at_once() -> None:
    h = History()
    h.trigger()
    h.plan({"a.a": []}, max_attempts=1)
    h.dispatch("a.a")
    h.start("a.a")
    h.fail("a.a")
    p = fold_all(h.events)
    assert (p.tasks["a.a"].state, p.tasks["a.a"].retry_not_before) == ("FAILED", None)
    assert p.run is not None and (p.run.tasks_failed, p.run.state) == (1, "FAILED")


@pytest.mark.parametrize("error", [{"retryable": False}, {"category": "DATA_QUALITY"}])
def test_20_non_retryable_error_fails_at_once(error: dict[str, Any]) -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    h.finish("a.a", "failed", error={"category": "USER_CODE", "message": "x", **error})
    assert fold_all(h.events).tasks["a.a"].state == "FAILED"


def test_20b_error_category_without_error_struct_decides_retry() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    h.finish("a.a", "failed", error_message="heartbeat_timeout", error_category="CONFIGURATION")
    task = fold_all(h.events).tasks["a.a"]
    assert (task.state, task.error_category, task.error_message) == (
        "FAILED",
        "CONFIGURATION",
        "heartbeat_timeout",
    )


def test_21_backoff_is_anchored_on_the_failure_event_id() -> None:
    h = chain()
    deadlines = []
    for attempt in (1, 2):
        h.dispatch("a.a", attempt)
        h.start("a.a", attempt)
        failure = h.add(
            TaskFinished(RUN, "a.a", attempt, h.aid("a.a", attempt), "w", "failed"), ts=T0 + 10**9
        )  # a wildly wrong event clock
        deadlines.append(fold_all(h.events).tasks["a.a"].retry_not_before - ulid_time_ms(failure.event_id))
    assert deadlines == [5_000, 10_000]
    h.dispatch("a.a", 3)
    h.start("a.a", 3)
    h.fail("a.a", 3)
    assert fold_all(h.events).tasks["a.a"].state == "FAILED"  # attempt 3 of 3


def test_26_cancel_cancels_waiting_tasks_and_lets_running_ones_finish() -> None:
    h = History()
    h.trigger()
    h.plan({"a.done": [], "a.run": [], "a.queued": [], "a.wait": ["a.run"]})
    h.run_task("a.done")
    h.dispatch("a.run")
    h.start("a.run")
    h.dispatch("a.queued")
    cancel = h.cancel()
    p = fold_all(h.events)
    states = {k: t.state for k, t in p.tasks.items()}
    assert states == {
        "a.done": "SUCCEEDED",
        "a.run": "RUNNING",
        "a.queued": "CANCELLED",
        "a.wait": "CANCELLED",
    }
    assert p.run is not None
    assert (p.run.cancel_requested, p.run.cancel_requested_at, p.run.cancel_reason) == (
        True,
        cancel.timestamp_ms,
        "stop",
    )
    assert public_run_state(p.run, p.tasks.values()) == "CANCELLING"
    assert dispatch_id(RUN, "a.queued", 1) not in p.outbox  # a cancelling run never dispatches
    assert p.deps[("a.run", "a.wait")].resolution is None  # edges untouched by a cancel
    h.start("a.queued")  # a late start is refused
    h.finish("a.run")  # the running task succeeds: the run still ends CANCELLED
    p = fold_all(h.events)
    assert p.tasks["a.queued"].state == "CANCELLED"
    assert p.tasks["a.run"].state == "SUCCEEDED"
    assert p.run is not None and (p.run.state, p.run.completed_at) == ("CANCELLED", h.now)


def test_26b_retryable_failure_in_a_cancelling_run_is_not_retried() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    h.cancel()
    h.fail("a.a")
    p = fold_all(h.events)
    assert p.tasks["a.a"].state == "CANCELLED"
    assert p.run is not None and p.run.state == "CANCELLED"
    h.finish("a.a")  # a late success never turns the cancelled task or run into SUCCEEDED
    p = fold_all(h.events)
    assert p.tasks["a.a"].state == "CANCELLED" and p.run is not None and p.run.state == "CANCELLED"


def _forced_cancel(h: History, task: str) -> Event:
    error = {"category": "CANCELLED", "code": "CANCEL_GRACE_EXPIRED", "message": "grace expired"}
    return h.finish(task, "cancelled", error=error)


def test_26e_a_success_minted_before_the_forced_cancel_but_written_after_never_flips_it() -> None:
    """Issue 15 item 9: the success's id is older than the forced cancel's, so a re-fold in ULID order
    meets it first; a cancel of the same attempt still wins, in every order."""
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    h.cancel()
    late = h.finish("a.a")  # minted now, written only after the forced cancel below
    h.events.remove(late)
    _forced_cancel(h, "a.a")
    published = fold(empty(), h.events)
    assert published.runs[RUN].tasks["a.a"].state == "CANCELLED"
    after = fold(published, [late]).runs[RUN]
    assert after.tasks["a.a"].state == "CANCELLED"
    assert after.run is not None and after.run.state == "CANCELLED" and after.run.tasks_succeeded == 0
    assert snapshot(after) == snapshot(fold_all(sorted([*h.events, late], key=lambda e: e.event_id)))
    # The other way round (the success folded and shown first) ends the same: the set decides.
    first = fold(empty(), [*h.events[:-1], late])
    assert first.runs[RUN].tasks["a.a"].state == "SUCCEEDED"
    assert snapshot(fold(first, h.events[-1:]).runs[RUN]) == snapshot(after)


def test_26c_cancel_of_a_terminal_or_unknown_run_is_rejected() -> None:
    h = History()
    h.cancel()
    assert fold_all(h.events).idempotency == {}
    h = History()
    h.trigger()
    h.plan({"a.a": []})
    h.run_task("a.a")
    h.cancel()
    p = fold_all(h.events)
    assert p.run is not None and (p.run.state, p.run.cancel_requested) == ("SUCCEEDED", False)


def test_26d_cancel_before_plan_ends_the_run_and_the_plan_arrives_cancelled() -> None:
    h = History()
    h.trigger()
    h.cancel()
    h.plan({"a.a": []})
    p = fold_all(h.events)
    assert p.run is not None
    assert (p.run.state, p.run.tasks_total, p.run.tasks_cancelled) == ("CANCELLED", 1, 1)
    assert p.tasks["a.a"].state == "CANCELLED"


def test_run_timeout_cancels_the_rest_and_ends_timed_out() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    h.add(RunTimedOut(RUN, "run_timeout"))
    p = fold_all(h.events)
    assert p.run is not None and (p.run.timed_out, p.run.cancel_requested, p.run.state) == (
        True,
        True,
        "RUNNING",
    )
    assert public_run_state(p.run, p.tasks.values()) == "CANCELLING"
    h.finish("a.a")
    p = fold_all(h.events)
    assert p.run is not None and p.run.state == "TIMED_OUT"
    assert public_run_state(p.run, p.tasks.values()) == "TIMED_OUT"


def test_run_timeout_deadline_and_trace_are_recorded() -> None:
    h = History()
    trigger = h.trigger(
        timeout_seconds=60, traceparent="00-abc-def-01", labels={"b": "2", "a": "1"}, run_key="k"
    )
    p = fold_all(h.events)
    assert p.run is not None
    assert (p.run.timeout_at, p.run.traceparent, p.run.labels, p.run.run_key, p.run.state) == (
        trigger.timestamp_ms + 60_000, "00-abc-def-01", '{"a":"1","b":"2"}', "k", "TRIGGERED",
    )  # fmt: skip


def test_33_success_with_visibility_and_lineage_in_one_event() -> None:
    h = History()
    h.trigger()
    h.plan({"a.a": []}, requires_visible_output=True)
    h.dispatch("a.a")
    h.start("a.a")
    output = {
        "materializationId": "m1",
        "deltaTable": "t",
        "deltaVersion": 4,
        "deltaPartition": "p",
        "rowCount": 2,
    }
    h.finish(
        "a.a",
        output=output,
        output_visibility=OutputVisibility("pending"),
        event_type="TaskCompletionRecorded",
    )
    p = fold_all(h.events)
    task = p.tasks["a.a"]
    lineage = (task.materialization_id, task.delta_table, task.delta_version, task.delta_partition)
    assert (task.state, lineage) == ("SUCCEEDED", ("m1", "t", 4, "p"))
    assert (
        task.output_json
        == '{"deltaPartition":"p","deltaTable":"t","deltaVersion":4,"materializationId":"m1","rowCount":2}'
    )
    assert task.output_visibility_state == "PENDING"


def test_33b_failure_may_carry_partial_output() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    h.finish("a.a", "failed", output={"rowCount": 1}, error={"category": "DATA_QUALITY", "message": "bad"})
    task = fold_all(h.events).tasks["a.a"]
    assert (task.state, task.output_json, task.error_message) == ("FAILED", '{"rowCount":1}', "bad")


def test_42_required_output_visibility_drives_the_public_run_state() -> None:
    h = History()
    h.trigger()
    h.plan({"a.a": []}, requires_visible_output=True)
    h.dispatch("a.a")
    h.start("a.a")
    h.finish("a.a", output_visibility=OutputVisibility("pending"))
    p = fold_all(h.events)
    assert p.run is not None and p.run.state == "SUCCEEDED"
    assert public_run_state(p.run, p.tasks.values()) == "RUNNING"
    aid = h.aid("a.a", 1)
    h.add(TaskOutputVisibilityChanged(RUN, "a.a", 1, aid, "visible", published_at=T0))
    h.add(TaskOutputVisibilityChanged(RUN, "a.a", 1, aid, "failed"))  # VISIBLE is final
    p = fold_all(h.events)
    assert (p.tasks["a.a"].output_visibility_state, p.tasks["a.a"].published_at) == ("VISIBLE", T0)
    assert p.run is not None and public_run_state(p.run, p.tasks.values()) == "SUCCEEDED"


def test_50_unknown_event_is_recorded_and_skipped() -> None:
    h = chain()
    raw = encode_event(h.events[0]).replace(b'"type":"run_triggered"', b'"type":"from_the_future"')
    raw = raw.replace(b'"event_type":"RunTriggered"', b'"event_type":"FromTheFuture"')
    h.run_task("a.a")
    unknown = decode_event(raw.replace(h.events[0].event_id.encode(), b"01HZZZZZZZZZZZZZZZZZZZZZZZ"))
    p = fold_all([*h.events, unknown])
    assert unknown.event_id in p.events
    assert snapshot(fold_all(h.events))[:-1] == snapshot(p)[:-1]


def test_51_rebuild_from_the_ledger_reproduces_the_projection() -> None:
    h = chain()
    h.run_task("a.a")
    h.dispatch("a.b")
    h.start("a.b")
    h.fail("a.b")
    live = empty()
    for event in h.events:
        live = fold(live, [event])
    ledger = [encode_event(e) for e in h.events]
    rebuilt = fold(empty(), (decode_event(b) for b in reversed(ledger)))
    assert snapshot(rebuilt.runs[RUN]) == snapshot(live.runs[RUN])


# ------------------------------------------------------------------------------------------ timers etc.


def test_timer_rows_in_and_out_of_order() -> None:
    tid = timer_id("retry", RUN, "a.a", 1, (T0 // 1000) + 60)
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    h.fail("a.a")
    h.add(TimerFired(tid, "retry"))
    h.add(TimerEnqueued(tid, "t_1"))
    p = fold_all(h.events)
    row = p.timers[tid]
    assert (row.state, row.cloud_task_id, row.fire_at, row.timer_type, row.task_key, row.attempt) == (
        "FIRED", "t_1", ((T0 // 1000) + 60) * 1000, "RETRY", "a.a", 1,
    )  # fmt: skip
    h.add(TimerRequested(tid, "retry", T0 + 99_000, run_id=RUN, task_key="a.a", attempt=1))
    p = fold_all(h.events)
    assert (p.timers[tid].state, p.timers[tid].fire_at) == ("FIRED", T0 + 99_000)
    assert p.tasks["a.a"].retry_not_before == T0 + 99_000  # the retry timer's fire_at is authoritative


def test_heartbeat_records_server_time_for_the_current_attempt_only() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    beat = h.heartbeat("a.a")
    h.heartbeat("a.a", aid="att_other")
    assert fold_all(h.events).tasks["a.a"].last_heartbeat_at == beat.timestamp_ms


def test_fold_is_pure_and_checks_scope() -> None:
    h = chain()
    first = fold(empty(), h.events[:1])
    before = snapshot(first.runs[RUN])
    fold(first, h.events[1:])
    assert snapshot(first.runs[RUN]) == before
    with pytest.raises(InvalidEvent):
        fold(FoldState("other", WS), h.events)
    with pytest.raises(InvalidEvent):
        fold_run(None, "01HZZZZZZZZZZZZZZZZZZOTHER", h.events)


def test_10k_task_plan_folds_incrementally() -> None:
    # Speed is measured by `make bench`; here only the result of a large incremental batch is checked.
    h = History()
    h.trigger()
    h.plan({f"a.t{i:05d}": [] for i in range(10_000)})
    state = fold(empty(), h.events)
    for i in range(2_500):
        h.dispatch(f"a.t{i:05d}")
        h.start(f"a.t{i:05d}")
        h.heartbeat(f"a.t{i:05d}")
        h.finish(f"a.t{i:05d}")
    state = fold(state, h.events[2:])
    run = state.runs[RUN].run
    assert run is not None and run.tasks_succeeded == 2_500 and run.tasks_total == 10_000


def start_tasks(h: History, tasks: int) -> list[str]:
    """Trigger ``h``'s run with ``tasks`` independent tasks and start them all; their keys."""
    h.trigger()
    keys = [f"a.t{i}" for i in range(tasks)]
    h.plan({k: [] for k in keys})
    for k in keys:
        h.dispatch(k)
        h.start(k)
    return keys


def _beating(minutes: int, tasks: int = 5) -> tuple[History, list[list[Event]]]:
    """Running tasks that heartbeat every 30 s for ``minutes``: the setup, then one batch a minute."""
    h = History()
    keys = start_tasks(h, tasks)
    batches = []
    for _ in range(minutes):
        start = len(h.events)
        for _ in range(2):
            for k in keys:
                h.heartbeat(k, heartbeat_at=h.now)  # as the callback writes it: the key holds the time
        batches.append(h.events[start:])
    return h, batches


def test_a_runs_state_holds_the_latest_liveness_per_attempt_not_the_heartbeat_history() -> None:
    """Issue 15 item 1: state is O(tasks), not O(heartbeats)."""
    sizes = []
    for minutes in (5, 120):
        h, batches = _beating(minutes)
        state = fold(empty(), h.events[: len(h.events) - sum(map(len, batches))])
        for batch in batches:
            state = fold(state, batch)
        p = state.runs[RUN]
        sizes.append((len(p.events), len(p.idempotency)))
        last = batches[-1][-1]
        assert p.tasks["a.t4"].last_heartbeat_at == last.timestamp_ms
        assert snapshot(p) == snapshot(fold_all(h.events))  # one clean fold keeps the same
    assert sizes[0] == sizes[1]


def test_a_duplicate_or_late_heartbeat_changes_nothing() -> None:
    h, batches = _beating(3)
    state = fold(empty(), h.events)
    before = snapshot(state.runs[RUN])
    assert snapshot(fold(state, batches[0] + batches[-1]).runs[RUN]) == before  # late, and redelivered
    late = h.heartbeat("a.t0")
    h.events.remove(late)
    newest = h.heartbeat("a.t0")
    state = fold(state, [newest])
    assert state.runs[RUN].tasks["a.t0"].last_heartbeat_at == newest.timestamp_ms
    assert snapshot(fold(state, [late]).runs[RUN]) == snapshot(state.runs[RUN])  # superseded already


def test_fold_ahead_applies_what_a_view_does_not_show_and_skips_what_it_applied() -> None:
    # A writer's view (services/_recent_writes): the published partition, without its events, and
    # the events the writer knows it wrote since, some of which that partition already holds.
    h = chain()
    h.dispatch("a.a")
    published = fold_all(h.events)
    published.events = {}  # a reader's partition carries rows and idempotency keys, not events
    h.start("a.a")
    h.finish("a.a")
    ahead = fold_ahead(published, h.events[-3:])  # the dispatch again, then the start and the finish
    assert [ahead.tasks[k].state for k in ("a.a", "a.b", "a.c")] == ["SUCCEEDED", "READY", "BLOCKED"]
    assert snapshot(ahead)[:6] == snapshot(fold_all(h.events))[:6]
    assert published.tasks["a.a"].state == "DISPATCHED"  # the view itself is not changed


def _reader_view(events: list[Event]) -> RunPartition:
    published = fold_all(events)
    published.events = {}  # a reader's partition carries rows and idempotency keys, not events
    return published


def test_fold_further_ahead_folds_only_the_newer_events_onto_an_earlier_fold_ahead() -> None:
    # A callback's instance folds its unpublished writes ahead once each (services/_recent_writes),
    # not all of them again on every callback until the next publish.
    h = chain()
    h.dispatch("a.a")
    published = _reader_view(h.events)
    started = h.start("a.a")
    first = fold_ahead(published, [started])
    finished = h.finish("a.a")
    further = fold_further_ahead(first, started.event_id, [finished])
    assert further == fold_ahead(published, [started, finished])
    assert further is not None and further.tasks["a.b"].state == "READY"
    assert first.tasks["a.a"].state == "RUNNING"  # the earlier view is not changed
    assert fold_further_ahead(first, started.event_id, [started]) == first  # nothing new


def test_fold_further_ahead_refuses_what_only_a_fold_from_the_start_gets_right() -> None:
    h = chain()
    h.dispatch("a.a")
    h.start("a.a")
    published = _reader_view(h.events)
    success = h.finish("a.a")
    cancel = _forced_cancel(h, "a.a")
    ahead = fold_ahead(published, [success])
    # The sweep's cancel of the same attempt comes after the success in ULID order, so a fold of
    # both never applies the success; the earlier view did.
    assert fold_further_ahead(ahead, success.event_id, [cancel]) is None
    assert fold_ahead(published, [success, cancel]).tasks["a.a"].state == "CANCELLED"
    # An event older than one the view applied belongs before it: only a fold from the start.
    cancelled = fold_ahead(published, [cancel])
    assert fold_further_ahead(cancelled, cancel.event_id, [success]) is None
