"""A callback's view of its run: the published partition with what this instance wrote since folded
ahead (services/_recent_writes). The view is kept between callbacks and only the events new since the
last one are folded onto it; whatever it keeps, it must equal a fresh ``fold_ahead`` of the same
published partition and the same remembered events."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st
from servo.core import fold as fold_module
from servo.core.events import Event
from servo.core.fold import fold_ahead, fold_run
from servo.core.state import RunPartition
from servo.services import _recent_writes as recent_writes
from servo.services._recent_writes import KEEP_MS, RecentWrites

from tests.core.test_fold import RUN, T0, TENANT, WS, History, chain
from tests.core.test_fold_properties import RUNS, _simulate


def _published(run_id: str, events: list[Event]) -> RunPartition:
    """What a callback reads: the run's rows and idempotency keys as published, without events."""
    return replace(fold_run(None, run_id, events), events={}, checkpoint=None)


def _applied(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the events the fold applies from now on, in the order it applies them."""
    seen: list[str] = []
    apply_all = fold_module._apply_all

    def counting(partition: RunPartition, events: list[Event]) -> set[str]:
        seen.extend(e.event_id for e in events)
        return apply_all(partition, events)

    monkeypatch.setattr(fold_module, "_apply_all", counting)
    return seen


def test_each_write_is_folded_ahead_once_per_published_view(monkeypatch: pytest.MonkeyPatch) -> None:
    # A chain's task calls back started, then completed, and its completion dispatches the next
    # task, all before a publish: re-folding every unpublished write on each callback made the
    # callbacks' view a fifth of the embedded stack's CPU (issue 21).
    h = chain()
    h.dispatch("a.a")
    published = _published(RUN, h.events)
    recent = RecentWrites()
    applied = _applied(monkeypatch)
    writes = [h.start("a.a"), h.finish("a.a"), h.dispatch("a.b"), h.ack("a.b"), h.start("a.b")]
    views = []
    for write in writes:
        recent.remember(TENANT, WS, [write], T0)
        views.append(recent.view(TENANT, WS, published, T0))
    assert applied == [w.event_id for w in writes]
    assert views[-1] == fold_ahead(published, writes)
    applied.clear()
    assert recent.view(TENANT, WS, published, T0) is views[-1]  # nothing new: the same view
    assert [v.tasks["a.a"].state for v in views[:2]] == ["RUNNING", "SUCCEEDED"]  # each kept as made

    # A publish that shows some of them: the rest is folded ahead of it afresh.
    published = _published(RUN, h.events[:-2])
    applied.clear()
    view = recent.view(TENANT, WS, published, T0)
    assert applied == [w.event_id for w in writes[-2:]]
    assert view == fold_ahead(published, writes[-2:])


def test_only_the_runs_called_back_last_keep_a_view(monkeypatch: pytest.MonkeyPatch) -> None:
    # A kept view holds a copy of its run's rows: a run nobody calls back any more (its last events
    # refused by the fold stay remembered for a while) must not keep one.
    monkeypatch.setattr(recent_writes, "MAX_VIEWS", 2)
    runs = [History(run=RUNS[0][:-1] + str(i)) for i in range(3)]
    recent = RecentWrites()
    published = []
    for h in runs:
        h.trigger()
        h.plan({"a.a": []})
        h.dispatch("a.a")
        published.append(_published(h.run, h.events))
        recent.remember(TENANT, WS, [h.start("a.a")], T0)
        recent.view(TENANT, WS, published[-1], T0)
    applied = _applied(monkeypatch)
    views = {}
    for h, part in reversed(list(zip(runs, published, strict=True))):
        recent.remember(TENANT, WS, [h.finish("a.a")], T0)
        views[h.run] = recent.view(TENANT, WS, part, T0)
    # The last two runs fold their one new write on their views; the first run's view was let go.
    assert applied == [
        *(runs[2].events[-1].event_id, runs[1].events[-1].event_id),
        *(runs[0].events[-2].event_id, runs[0].events[-1].event_id),
    ]
    for h, part in zip(runs, published, strict=True):
        assert views[h.run] == fold_ahead(part, h.events[-2:])


class _Model:
    """What a view must show: every remembered event that is recent enough and that no view showed
    applied yet (an event a published view applied stays applied in every later one)."""

    def __init__(self) -> None:
        self.kept: dict[str, tuple[int, Event]] = {}

    def remember(self, event: Event, now: int) -> None:
        self.kept[event.event_id] = (now, event)

    def expected(self, part: RunPartition, now: int) -> RunPartition:
        self.kept = {
            i: (t, e)
            for i, (t, e) in self.kept.items()
            if now - t < KEEP_MS and e.idempotency_key not in part.idempotency
        }
        return fold_ahead(part, [e for _, e in self.kept.values()]) if self.kept else part


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_kept_view_equals_a_fresh_fold_ahead_of_the_same_inputs(data: st.DataObject) -> None:
    _, all_events = _simulate(data)
    written = [e for e in all_events if e.run_id == RUNS[0]]  # in the order they reached the ledger
    recent, model = RecentWrites(), _Model()
    now = T0
    done: set[int] = set()  # written events remembered, or written by another instance
    published_upto = 2  # the trigger and the plan
    part = _published(RUNS[0], written[:published_upto])
    seen = part
    ops = data.draw(st.lists(st.sampled_from(_OPS), min_size=len(written), max_size=4 * len(written)))
    for op in ops:
        note_event(op)
        waiting = [i for i in range(len(written)) if i not in done][:4]
        if op in ("remember", "other writer", "fold on") and waiting:
            # Writers remember what they wrote a little out of order (threads of one instance),
            # and some of the run's events are another instance's (the compactor's dispatches).
            i = data.draw(st.sampled_from(waiting), label="which")
            done.add(i)
            # A completing callback folds its event onto the view it was given before writing it,
            # and hands that fold on once the event is written and remembered.
            ahead = recent.further(TENANT, WS, seen, [written[i]]) if op == "fold on" else None
            if op != "other writer":
                recent.remember(TENANT, WS, [written[i]], now)
                model.remember(written[i], now)
            if ahead is not None:
                recent.advance(TENANT, WS, seen, ahead, [written[i]])
        elif op == "publish":
            # A publish folds a longer prefix of the ledger (the run's partition is read anew).
            upto = data.draw(st.integers(published_upto, len(written)), label="publish")
            if upto > published_upto:
                published_upto, part = upto, _published(RUNS[0], written[:upto])
        elif op == "tick":
            now += data.draw(st.sampled_from((1, 1, 1000, KEEP_MS // 2, KEEP_MS)), label="tick")
        elif op == "view":
            # The reader's copy of the same head is now and then another object (a cache that let
            # it go and read the head again).
            base = part if data.draw(st.integers(0, 4), label="same object?") else replace(part)
            seen = recent.view(TENANT, WS, base, now)
            assert seen == model.expected(base, now)
    assert recent.view(TENANT, WS, part, now) == model.expected(part, now)


_OPS = (
    *("remember", "remember", "fold on", "fold on", "other writer"),
    *("view", "view", "view", "publish", "tick"),
)


def test_a_cancel_after_a_success_the_view_applied_wins_as_in_one_fold_of_both() -> None:
    # The sweep's forced cancel of an attempt whose success was minted just before it: in ULID
    # order the success comes first, and a fold of both never applies it.
    h = History(run=RUNS[0])
    h.trigger()
    h.plan({"a.t0": []})
    h.dispatch("a.t0")
    h.start("a.t0")
    published = _published(RUNS[0], h.events)
    success = h.finish("a.t0")
    cancel = h.finish("a.t0", "cancelled")
    recent = RecentWrites()
    recent.remember(TENANT, WS, [success], T0)
    assert recent.view(TENANT, WS, published, T0).tasks["a.t0"].state == "SUCCEEDED"
    recent.remember(TENANT, WS, [cancel], T0)
    assert recent.view(TENANT, WS, published, T0).tasks["a.t0"].state == "CANCELLED"


def test_a_runs_leaf_ends_are_let_go_once_it_ended_and_never_pile_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # The last leaf's note would otherwise stay for good (no later callback of an ended run prunes
    # it), and a long-lived stack would keep one entry per run it ever ran.
    monkeypatch.setattr(recent_writes, "MAX_RUNS", 3)
    recent = RecentWrites()
    for i in range(8):
        h = History(run=RUNS[0][:-1] + str(i))
        h.trigger()
        h.plan({"a.a": [], "a.b": []})
        h.dispatch("a.a")
        h.dispatch("a.b")
        part = _published(h.run, h.events)
        assert recent.leaf_ended(TENANT, WS, part, "a.a", h.finish("a.a"), T0 + i) == 1
        if i % 2 == 0:  # the run's other leaf ends too: nothing of it is kept
            assert recent.leaf_ended(TENANT, WS, part, "a.b", h.finish("a.b"), T0 + i) == 0
            assert (TENANT, WS, h.run) not in recent._leaf_ends
        assert len(recent._leaf_ends) <= 3
    # Notes older than an event is kept are forgotten first: a run left half done long ago goes.
    h = History(run=RUNS[0][:-1] + "x")
    h.trigger()
    h.plan({"a.a": [], "a.b": []})
    part = _published(h.run, h.events)
    recent.leaf_ended(TENANT, WS, part, "a.a", h.finish("a.a"), T0 + KEEP_MS + 10)
    assert list(recent._leaf_ends) == [(TENANT, WS, h.run)]


def test_a_published_short_runs_writes_are_let_go_without_another_callback() -> None:
    # A short run's writes are published with its end, and no later callback of the run views them
    # to forget them: they went only past MAX_RUNS runs (some 70 MB of a long `servo dev`).
    runs = [History(run=RUNS[0][:-1] + str(i)) for i in range(3)]
    recent = RecentWrites()
    for h in runs[:2]:
        h.trigger()
        h.plan({"a.a": [], "a.b": []})
        recent.remember(TENANT, WS, h.events, T0)
    assert recent.unpublished_view(TENANT, WS, runs[0].run, T0).run is not None
    # One leaf ended as progress; the other failed (not noted): the run's notes have no last one.
    part = _published(runs[0].run, runs[0].events)
    assert recent.leaf_ended(TENANT, WS, part, "a.a", runs[0].finish("a.a"), T0) == 1
    runs[2].trigger()
    recent.remember(TENANT, WS, runs[2].events, T0 + KEEP_MS)  # a write a while later
    assert [run for _, _, run in recent._runs] == [runs[2].run]
    assert [run for _, _, run in recent._ahead] == []
    assert recent._leaf_ends == {}


def test_an_unpublished_runs_view_folds_only_the_writes_new_since_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The trigger dispatched the root: every callback of the run views it from its creation on.
    h = chain()
    recent = RecentWrites()
    recent.remember(TENANT, WS, h.events, T0)
    first = recent.unpublished_view(TENANT, WS, RUN, T0)
    assert first == fold_ahead(RunPartition(RUN), h.events)
    applied = _applied(monkeypatch)
    write = h.dispatch("a.a")
    recent.remember(TENANT, WS, [write], T0)
    second = recent.unpublished_view(TENANT, WS, RUN, T0)
    assert applied == [write.event_id]
    assert second == fold_ahead(RunPartition(RUN), h.events)
