"""A controller pass with many dispatches (a wide fan-out): it enqueues them concurrently, writes their
events as it goes, and nothing it has in flight is requested again by another pass."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from servo.dispatch import EnqueueOutcome
from servo.services.context import ServiceContext
from servo.services.effects import RECENT_DECISION_TTL_MS
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import act_on, compact_workspace
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import FakeClock, RecordingQueue, make_context

WS = "prod"
WIDTH = 80


def _wide(tmp_path: Path) -> tuple[ServiceContext, FakeClock, RecordingQueue, list[str]]:
    # The GCP compactor's settings: request and acknowledgement written together.
    ctx, clock, queue = make_context(tmp_path, compact=False, defer_dispatch_ack=False)
    children = [asset(f"ns.c{i:02d}") for i in range(WIDTH)]
    assert deploy_manifest(ctx, "default", WS, json.dumps(manifest(*children)).encode(), None)[0] == 201
    trigger_run(ctx, "default", WS, {"selection": [f"ns.c{i:02d}" for i in range(WIDTH)]})
    _, _, _, changed = compact_workspace(ctx, "default", WS)
    return ctx, clock, queue, changed


def _ledger_count(ctx: ServiceContext, event_type: str) -> int:
    names = [m.name for m in ctx.store.list(f"default/{WS}/ledger/orchestration/")]
    return sum(1 for n in names if json.loads(ctx.store.get(n).data)["event_type"] == event_type)  # type: ignore[union-attr]


def test_dispatches_are_enqueued_concurrently(tmp_path: Path) -> None:
    # One at a time, a 1,000-task fan-out on the emulator stack took 100 s to reach its last worker.
    ctx, _, _, changed = _wide(tmp_path)
    together = threading.Barrier(4, timeout=10)

    class Concurrent(RecordingQueue):
        def enqueue(self, name: str, task: Any) -> EnqueueOutcome:
            if not together.broken:
                together.wait()  # four enqueues must be in flight at once to pass
            return super().enqueue(name, task)

    concurrent = Concurrent()
    ctx = replace(ctx, queue=concurrent)
    assert act_on(ctx, "default", WS, changed) == 2 * WIDTH
    assert not together.broken and len(concurrent.take()) == WIDTH


def test_a_wide_pass_writes_its_events_as_it_goes(tmp_path: Path) -> None:
    # Written all at the end, the first requests would wait for the last enqueue before any compaction
    # could fold them, and their ids would be older than the listing window by then.
    ctx, _, _, changed = _wide(tmp_path)
    seen_at_last: list[int] = []

    class Watching(RecordingQueue):
        def enqueue(self, name: str, task: Any) -> EnqueueOutcome:
            outcome = super().enqueue(name, task)
            if len(self.tasks) == WIDTH:
                seen_at_last.append(_ledger_count(ctx, "DispatchRequested"))
            return outcome

    ctx = replace(ctx, queue=Watching())
    act_on(ctx, "default", WS, changed)
    assert seen_at_last and seen_at_last[0] > 0
    assert _ledger_count(ctx, "DispatchRequested") == WIDTH


def test_requests_in_flight_are_not_made_again_however_long_they_take(tmp_path: Path) -> None:
    ctx, clock, _, changed = _wide(tmp_path)
    entered, release = threading.Event(), threading.Event()

    class Slow(RecordingQueue):
        def enqueue(self, name: str, task: Any) -> EnqueueOutcome:
            entered.set()
            assert release.wait(10)
            return super().enqueue(name, task)

    slow = Slow()
    first = threading.Thread(target=act_on, args=(replace(ctx, queue=slow), "default", WS, changed))
    first.start()
    assert entered.wait(10)
    clock.advance(RECENT_DECISION_TTL_MS + 1)  # the first pass has been at it for over a minute
    other = RecordingQueue()
    assert act_on(replace(ctx, queue=other), "default", WS, changed) == 0
    release.set()
    first.join(10)
    assert other.take() == [] and len(slow.take()) == WIDTH
