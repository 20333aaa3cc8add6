"""Group commit: a background loop compacts what writers hand over, in batches, without listing.

Every test injects the loop's clock and wait, so no real time decides what shares a publish.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servo.dev.group_commit import GroupCommit
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import Changes, compact_changes
from servo.services.runs import load_run
from servo.services.trigger import trigger_run
from servo.settings import Settings
from servo.store import CountingStore

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context

WS = "prod"
SCOPE = ("default", WS)


class PointerSpy:
    """The store port, counting head-pointer publishes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.pointer_writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, name: str, data: bytes, **kw: Any) -> int:
        if name.endswith("manifest.pointer.json"):
            self.pointer_writes.append(name)
        return int(self.inner.put(name, data, **kw))


class Clock:
    """A clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now_ms = 1_000

    def __call__(self) -> int:
        return self.now_ms


def deployed(tmp_path: Path) -> ServiceContext:
    ctx, _, _ = make_context(tmp_path, compact=False)
    assert deploy_manifest(ctx, "default", WS, json.dumps(manifest(asset("ns.a"))).encode(), None)[0] == 201
    return ctx


def with_hook(ctx: ServiceContext, group: GroupCommit, *, force_no_wait: bool = False) -> ServiceContext:
    def hook(
        c: ServiceContext, tenant: str, ws: str, names: Any, *, await_publish: bool, urgent: bool = True
    ) -> None:
        group.commit(c, (tenant, ws), names, await_publish=await_publish and not force_no_wait, urgent=urgent)

    return replace(ctx, after_ledger_write=hook)


def trigger(ctx: ServiceContext) -> str:
    _, body = trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})
    return str(body["runId"])


def visible(ctx: ServiceContext, run_id: str) -> bool:
    return load_run(replace(ctx, cache={}), "default", WS, run_id) is not None


@pytest.fixture
def stopping() -> Iterator[list[GroupCommit]]:
    groups: list[GroupCommit] = []
    yield groups
    for group in groups:
        group.stop()


def test_concurrent_triggers_share_compactions_and_each_sees_its_run(
    tmp_path: Path, stopping: list[GroupCommit]
) -> None:
    ctx = deployed(tmp_path)
    spy = PointerSpy(CountingStore(ctx.store))
    group = GroupCommit(window_ms=0)
    stopping.append(group)
    ctx = with_hook(replace(ctx, store=spy), group)
    seen: dict[int, bool] = {}
    start = threading.Barrier(16)

    def writer(i: int) -> None:
        start.wait()
        seen[i] = visible(ctx, trigger(ctx))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert seen == dict.fromkeys(range(16), True)  # read-after-write for every writer
    assert 1 <= len(spy.pointer_writes) < 16  # and fewer publishes than writes


def test_a_writer_that_does_not_wait_returns_before_its_publish(
    tmp_path: Path, stopping: list[GroupCommit]
) -> None:
    gate = threading.Event()

    def held(*args: Any, **kw: Any) -> Any:
        gate.wait(10)
        return compact_changes(*args, **kw)

    group = GroupCommit(compact=held)
    stopping.append(group)
    ctx = with_hook(deployed(tmp_path), group, force_no_wait=True)
    run_id = trigger(ctx)  # returns although the compaction is held
    assert not visible(ctx, run_id)
    gate.set()
    assert group.wait_idle(10)
    assert visible(ctx, run_id)


def test_writes_within_the_window_share_one_publish(tmp_path: Path, stopping: list[GroupCommit]) -> None:
    clock, waits, gate = Clock(), [], threading.Event()

    def wait(seconds: float) -> None:
        waits.append(seconds)
        gate.wait(10)  # the window stays open until the test has written everything
        clock.now_ms += int(seconds * 1000)

    ctx = deployed(tmp_path)
    spy = PointerSpy(ctx.store)
    group = GroupCommit(window_ms=25, clock_ms=clock, wait=wait)
    stopping.append(group)
    ctx = with_hook(replace(ctx, store=spy), group)
    first = trigger(ctx)  # an idle stack publishes at once
    assert visible(ctx, first) and len(spy.pointer_writes) == 1 and waits == []
    quiet = with_hook(ctx, group, force_no_wait=True)
    burst = [trigger(quiet) for _ in range(3)]  # within 25 ms of the last publish
    gate.set()
    assert group.wait_idle(10)
    assert all(visible(ctx, run_id) for run_id in burst)
    assert len(spy.pointer_writes) == 2 and waits == [0.025]
    clock.now_ms += 25  # idle again: the next write publishes without waiting
    assert visible(ctx, trigger(ctx)) and waits == [0.025]


def test_a_writer_someone_waits_on_cuts_the_window_short(tmp_path: Path, stopping: list[GroupCommit]) -> None:
    # The window batches background writes; a trigger's caller is not made to wait it out. With a
    # window of a minute, only cutting it short lets the trigger below return.
    ctx = deployed(tmp_path)
    spy = PointerSpy(ctx.store)
    group = GroupCommit(window_ms=60_000)
    stopping.append(group)
    ctx = with_hook(replace(ctx, store=spy), group)
    assert visible(ctx, trigger(ctx))  # the first publish opens a window
    quiet = with_hook(ctx, group, force_no_wait=True)
    background = trigger(quiet)
    assert not visible(ctx, background)  # held for the window
    done: list[str] = []
    waiter = threading.Thread(target=lambda: done.append(trigger(ctx)))
    waiter.start()
    waiter.join(30)
    assert done and visible(ctx, done[0]) and visible(ctx, background)
    assert len(spy.pointer_writes) == 2  # the awaited write and the held one share a publish


def test_a_failed_compaction_releases_its_waiters_and_the_next_round_retries_it(
    tmp_path: Path, stopping: list[GroupCommit]
) -> None:
    ctx, _, _ = make_context(tmp_path, compact=False)
    calls: list[list[str]] = []

    def flaky(_ctx: Any, _tenant: str, _ws: str, names: list[str]) -> Any:
        calls.append(names)
        if len(calls) == 1:
            raise RuntimeError("compaction failed")
        return Changes()

    group = GroupCommit(compact=flaky, wait=lambda _s: None)
    stopping.append(group)
    group.commit(ctx, SCOPE, ["ledger/orchestration/x.json"])  # released, not raised
    assert group.wait_idle(10)
    assert calls == [["ledger/orchestration/x.json"], ["ledger/orchestration/x.json"]]
    group.commit(ctx, SCOPE, ["ledger/orchestration/y.json"])  # the group is not stuck
    assert calls[-1] == ["ledger/orchestration/y.json"]


def test_the_group_commit_compacts_without_listing_the_ledger(
    tmp_path: Path, stopping: list[GroupCommit]
) -> None:
    ctx = deployed(tmp_path)
    _, body = trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})  # written, not compacted
    names = _ledger_names(ctx)
    counting = CountingStore(ctx.store)
    group = GroupCommit()
    stopping.append(group)
    group.commit(replace(ctx, store=counting), SCOPE, names)
    assert counting.snapshot().lists == 0
    assert visible(ctx, body["runId"])


def _ledger_names(ctx: ServiceContext) -> list[str]:
    prefix = f"default/{WS}/"
    return [m.name[len(prefix) :] for m in ctx.store.list(f"{prefix}ledger/orchestration/")]


def test_changed_runs_reach_the_callback(tmp_path: Path, stopping: list[GroupCommit]) -> None:
    changed: list[tuple[tuple[str, str], Changes]] = []
    group = GroupCommit(lambda _c, scope, changes: changed.append((scope, changes)))
    stopping.append(group)
    run_id = trigger(with_hook(deployed(tmp_path), group))
    assert changed == [(SCOPE, Changes(runs=frozenset({run_id})))]


def test_a_commit_after_stop_returns_at_once(tmp_path: Path) -> None:
    ctx, _, _ = make_context(tmp_path, compact=False)
    group = GroupCommit()
    group.stop()
    group.commit(ctx, SCOPE, ["ledger/orchestration/z.json"])  # durable in the ledger: the sweep folds it
    assert group.wait_idle(1)


def test_the_window_is_a_setting() -> None:
    assert Settings().group_commit_window_ms == 50
    assert Settings.from_env({"SERVO_GROUP_COMMIT_WINDOW_MS": "5"}).group_commit_window_ms == 5
    assert Settings().group_commit_progress_window_ms == 500
    env = {"SERVO_GROUP_COMMIT_PROGRESS_WINDOW_MS": "100"}
    assert Settings.from_env(env).group_commit_progress_window_ms == 100


class Recorder:
    """A compaction stand-in that records each batch it is handed."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(
        self, _ctx: Any, _tenant: str, _ws: str, names: list[str]
    ) -> tuple[bool, int, int, list[str]]:
        self.batches.append(names)
        return True, len(self.batches), len(names), []


def _timed(stopping: list[GroupCommit]) -> tuple[GroupCommit, Clock, list[float], Recorder]:
    """A loop with a 25 ms window and a 500 ms progress window whose waits only move its clock."""
    clock, waits, record = Clock(), [], Recorder()

    def wait(seconds: float) -> None:
        waits.append(seconds)
        clock.now_ms += int(seconds * 1000)

    group = GroupCommit(compact=record, window_ms=25, progress_window_ms=500, clock_ms=clock, wait=wait)
    stopping.append(group)
    return group, clock, waits, record


@pytest.mark.parametrize("idle_ms", [0, 60_000], ids=["busy", "after-an-idle-spell"])
def test_progress_alone_waits_the_longer_window(stopping: list[GroupCommit], idle_ms: int) -> None:
    # Dispatch records, starts and heartbeats unblock nothing: publishing them at once would cost a
    # publish of their own whenever a task outlasts the short window (a chain then published twice a
    # hop). Alone in the queue they wait the progress window from the first of them, even after an
    # idle spell (a short run's creation whose trigger dispatched its roots then shares the publish of
    # the run's end); anything else keeps the short window, and after an idle spell goes at once.
    group, clock, waits, record = _timed(stopping)
    group.commit(None, SCOPE, ["first"], await_publish=True)  # type: ignore[arg-type]
    clock.now_ms += idle_ms
    group.commit(None, SCOPE, ["started"], await_publish=True, urgent=False)  # type: ignore[arg-type]
    assert waits == [0.5]
    clock.now_ms += idle_ms
    group.commit(None, SCOPE, ["finished"], await_publish=True)  # type: ignore[arg-type]
    assert waits == ([0.5] if idle_ms else [0.5, 0.025])
    assert record.batches == [["first"], ["started"], ["finished"]]


def _progress_held(stopping: list[GroupCommit]) -> tuple[GroupCommit, Recorder]:
    """A loop that published ``first`` and holds ``started`` (progress) for a minute's window."""
    record = Recorder()
    group = GroupCommit(compact=record, window_ms=0, progress_window_ms=60_000)
    stopping.append(group)
    group.commit(None, SCOPE, ["first"], await_publish=True)  # type: ignore[arg-type]
    group.commit(None, SCOPE, ["started"], await_publish=False, urgent=False)  # type: ignore[arg-type]
    assert record.batches == [["first"]]  # held for the progress window
    return group, record


def test_an_urgent_write_ends_the_progress_window(stopping: list[GroupCommit]) -> None:
    # With a progress window of a minute, only its end at the urgent write lets this test finish.
    group, record = _progress_held(stopping)
    group.commit(None, SCOPE, ["finished"], await_publish=False)  # type: ignore[arg-type]
    assert group.wait_idle(30)
    assert record.batches == [["first"], ["finished", "started"]]


class CountedCondition(threading.Condition):
    """A condition counting its notifications: each one wakes every thread waiting on it."""

    def __init__(self, lock: Any = None) -> None:
        super().__init__(lock)
        self.notified = 0

    def notify_all(self) -> None:
        self.notified += 1
        super().notify_all()


def test_a_write_that_changes_nothing_the_loop_decides_does_not_wake_it(
    monkeypatch: pytest.MonkeyPatch, stopping: list[GroupCommit]
) -> None:
    # A fan-out's callbacks commit several times a task while the loop waits out its window: waking
    # it (and every writer waiting for its publish) on each of them cost a context switch a commit.
    # Only a commit into an empty queue, an urgent one into a progress window, or an awaited one does.
    record = Recorder()
    monkeypatch.setattr(threading, "Condition", CountedCondition)
    group = GroupCommit(compact=record, window_ms=0, progress_window_ms=60_000)
    monkeypatch.undo()
    stopping.append(group)
    cv = group._cv
    assert isinstance(cv, CountedCondition)
    group.commit(None, SCOPE, ["first"], await_publish=True)  # type: ignore[arg-type]
    group.commit(None, SCOPE, ["started"], await_publish=False, urgent=False)  # type: ignore[arg-type]
    before = cv.notified
    for n in range(10):
        group.commit(None, SCOPE, [f"beat{n}"], await_publish=False, urgent=False)  # type: ignore[arg-type]
    assert cv.notified == before
    group.commit(None, SCOPE, ["finished"], await_publish=False)  # type: ignore[arg-type]
    assert cv.notified == before + 1  # it ends the progress window
    assert group.wait_idle(30)
    assert record.batches[0] == ["first"] and sorted(n for b in record.batches[1:] for n in b) == sorted(
        ["started", *(f"beat{n}" for n in range(10)), "finished"]
    )


def test_settle_publishes_what_is_held_back_at_once(stopping: list[GroupCommit]) -> None:
    # A reader (GetRun right after a trigger that dispatched its roots) must not wait the progress window.
    group, record = _progress_held(stopping)
    group.settle(("t", "other"))  # nothing of that workspace is held: returns at once
    assert record.batches == [["first"]]
    group.settle(SCOPE)
    assert record.batches == [["first"], ["started"]]


class Gated(Recorder):
    """A compaction that holds its first round until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def __call__(self, ctx: Any, tenant: str, ws: str, names: list[str]) -> tuple[bool, int, int, list[str]]:
        answer = super().__call__(ctx, tenant, ws, names)
        if len(self.batches) == 1:
            self.entered.set()
            assert self.gate.wait(30)
        return answer


def test_settle_waits_for_its_workspace_only_and_for_what_was_queued_during_a_round(
    stopping: list[GroupCommit],
) -> None:
    # A reader of another workspace does not wait for this one's round; a reader of this one waits
    # for the round after it, which takes what was handed over while it ran.
    record = Gated()
    group = GroupCommit(compact=record, window_ms=0, progress_window_ms=60_000)
    stopping.append(group)
    group.commit(None, SCOPE, ["first"], await_publish=False)  # type: ignore[arg-type]
    assert record.entered.wait(30)
    group.settle(("default", "other"))  # returns while SCOPE's round is held
    group.commit(None, SCOPE, ["second"], await_publish=False, urgent=False)  # type: ignore[arg-type]
    threading.Timer(0.05, record.gate.set).start()
    group.settle(SCOPE)
    assert record.batches == [["first"], ["second"]]


def test_settle_returns_after_a_failed_round_and_after_stop(stopping: list[GroupCommit]) -> None:
    def failing(*_: Any) -> Any:
        raise RuntimeError("store unavailable")

    group = GroupCommit(compact=failing, window_ms=0, progress_window_ms=60_000)
    stopping.append(group)
    group.commit(None, SCOPE, ["created"], await_publish=False, urgent=False)  # type: ignore[arg-type]
    group.settle(SCOPE)  # the round failed: the names wait for the next one, the reader does not
    group.stop()
    group.settle(SCOPE)
