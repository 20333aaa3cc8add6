"""Hypothesis: a writer's view folded ahead a few events at a time (``fold_further_ahead``) equals one
``fold_ahead`` of the published partition over all of them, or is refused."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st
from servo.core.events import Event
from servo.core.fold import fold_ahead, fold_further_ahead, fold_run
from servo.core.ids import UlidFactory, ulid_time_ms
from servo.core.state import RunPartition

from tests.core.test_fold import History
from tests.core.test_fold_properties import RUNS, _simulate


def _with_a_late_success(
    data: st.DataObject, published: RunPartition, stream: list[Event]
) -> tuple[list[Event], list[int]]:
    """``stream`` with, now and then, an attempt's success and the sweep's forced cancel minted just
    after it inserted where the attempt is in flight, and a cut between them: a single fold refuses
    that success, where one folded ahead of the cancel applied it."""
    at = data.draw(st.integers(0, len(stream)), label="late success at")
    view = fold_ahead(published, stream[:at])
    in_flight = sorted(k for k, t in view.tasks.items() if t.state in ("DISPATCHED", "RUNNING"))
    if not in_flight or not data.draw(st.booleans(), label="late success?"):
        return stream, []
    task = view.tasks[data.draw(st.sampled_from(in_flight), label="task")]
    newest = max(e.event_id for e in stream[:at]) if at else ""
    ids = UlidFactory(lambda n: bytes(n))
    now = ulid_time_ms(newest) if newest else 0
    ids.new(now)  # the simulator's ids take no randomness: the next two sort right after ``newest``
    h = History(run=RUNS[0], now=now - 1000, ids=ids)
    success = h.finish(task.task_key, "succeeded", task.attempt, task.attempt_id)
    h.now -= 1000
    error = {"category": "CANCELLED", "code": "CANCEL_GRACE_EXPIRED", "message": "grace expired"}
    cancel = h.finish(task.task_key, "cancelled", task.attempt, task.attempt_id, error=error)
    return [*stream[:at], success, cancel, *stream[at:]], [at + 1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_folding_ahead_in_batches_equals_one_fold_ahead_or_is_refused(data: st.DataObject) -> None:
    _, all_events = _simulate(data)
    written = [e for e in all_events if e.run_id == RUNS[0]]  # in the order they reached the ledger
    upto = data.draw(st.integers(2, len(written)), label="published")
    published = replace(fold_run(None, RUNS[0], written[:upto]), events={}, checkpoint=None)
    # The writer's later events in ULID order, each up to a few places late, some written again.
    rest = sorted(written[upto:], key=lambda e: e.event_id)
    delays = data.draw(st.lists(st.integers(0, 3), min_size=len(rest), max_size=len(rest)), label="late")
    stream = [rest[i] for i in sorted(range(len(rest)), key=lambda i: (i + delays[i], i))]
    stream += data.draw(st.lists(st.sampled_from(written), max_size=3), label="again")
    stream, between = _with_a_late_success(data, published, stream)
    # The inserted success and cancel are minted without randomness, as the simulator's events are:
    # one may take an id the simulator already gave another event, which no ledger ever holds.
    by_id = {e.event_id: e for e in stream}
    assume(all(by_id[e.event_id] == e for e in stream))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=3), label="cuts") + between)
    view: RunPartition = published
    after, folded = "", 0
    for hi in [*cuts, len(stream)]:
        further = fold_further_ahead(view, after, stream[folded:hi])
        note_event("refused" if further is None else "folded further")
        expected = fold_ahead(published, stream[:hi])
        if further is not None:
            assert further == expected
        assert view == (fold_ahead(published, stream[:folded]) if folded else published)  # unchanged
        view, folded = expected, hi
        after = max([after, *(e.event_id for e in stream[:hi])])
