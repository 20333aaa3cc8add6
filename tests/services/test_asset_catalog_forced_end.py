"""The sweep's forced end of an attempt reaches partition status (automation §6.5): an attempt the worker
never reported (heartbeat timeout) is the partition's last attempt, FAILED, and a success before it
stays the last materialization; the forced end carries the attempt's dispatch time as its worker's
token states it, so a late report of the same attempt ranks as that attempt (tests/core/
test_asset_catalog.py holds the property over any order)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from servo.core.controller import ControllerConfig, forced_dispatched_at
from servo.core.events import TaskFinished
from servo.dispatch import EnqueueOutcome, HttpTask
from servo.services.asset_projection import rebuild_asset_catalog, refresh_asset_catalog
from servo.services.context import ServiceContext
from servo.services.timers import sweep_workspace
from servo.tokens import verify_task_token

from tests.services.catalog_support import WS, Stack, daily_asset, day, stack
from tests.support.context import FakeClock, RecordingQueue

JAN5 = day("2025-01-05")


def _silent_second_run(tmp_path: Path) -> tuple[Stack, str, str, dict]:  # type: ignore[type-arg]
    """A partition materialized by one run, then a second run whose worker starts and goes silent
    until the sweep fails its attempt for want of a heartbeat."""
    s = stack(tmp_path)
    s.deploy(daily_asset("ns.daily", maxRetries=0))
    first = s.trigger("ns.daily", partition=JAN5)
    s.finish_next()
    second = s.trigger("ns.daily", partition=JAN5)
    [envelope] = s.start_next()
    s.clock.advance(91_000)  # past the default 90 s heartbeat timeout
    assert sweep_workspace(s.ctx, "default", WS, ControllerConfig())["repairs"] == 1
    return s, first, second, envelope


def test_a_heartbeat_timeout_is_the_partitions_last_attempt_and_keeps_the_success(tmp_path: Path) -> None:
    s, first, second, envelope = _silent_second_run(tmp_path)
    [forced] = [e.data for e in s.events() if isinstance(e.data, TaskFinished) and e.data.run_id == second]
    assert "HEARTBEAT_TIMEOUT" in (forced.error_message or "")
    assert (forced.asset_key, forced.partition_key, forced.code_version) == ("ns.daily", JAN5, "f1")
    catalog = refresh_asset_catalog(s.ctx, "default", WS)
    row = catalog.lookup(("ns.daily", JAN5))
    assert row is not None and row.last_attempt is not None and row.last_materialization is not None
    assert (row.last_attempt.run_id, row.last_attempt.attempt, row.last_attempt.outcome) == (
        second,
        envelope["attempt"],
        "FAILED",
    )
    assert row.last_materialization.run_id == first
    assert (catalog.assets["ns.daily"].materialized, catalog.assets["ns.daily"].failed) == (1, 1)
    rows = {(r.asset_key, r.partition_key): r for r in catalog.all_partitions()}
    assert (rows, catalog.assets) == rebuild_asset_catalog(s.events())


def _iat(ctx: ServiceContext, envelope: dict) -> int:  # type: ignore[type-arg]
    return verify_task_token(ctx.settings.token_secret, envelope["taskToken"], ctx.clock_ms() // 1000).iat


@dataclass
class _SlowQueue(RecordingQueue):
    """Cloud Tasks taking 800 ms to accept a task: the dispatch's clock moves on while it enqueues."""

    clock: FakeClock = field(default_factory=FakeClock)

    def enqueue(self, queue: str, task: HttpTask) -> EnqueueOutcome:
        self.clock.advance(800)
        return super().enqueue(queue, task)


def test_the_dispatch_time_of_an_attempt_is_its_tokens_issue_time(tmp_path: Path) -> None:
    """What the sweep puts in a forced end's dispatched_at equals what the worker's token says, even
    when the enqueue crosses a second, and a repair's fresh token keeps the attempt's issue time."""
    s = stack(tmp_path)
    s.clock.advance(500)
    slow = _SlowQueue(clock=s.clock)
    s = replace(s, ctx=replace(s.ctx, queue=slow), queue=slow)
    s.deploy(daily_asset("ns.daily", maxRetries=0))
    run_id = s.trigger("ns.daily", partition=JAN5)
    [envelope] = [json.loads(t.body) for t in s.queue.take()]
    row = s.ctx.snapshot("default", WS).partition(run_id).tasks["ns.daily"]  # type: ignore[union-attr]
    assert forced_dispatched_at(row) == _iat(s.ctx, envelope) * 1000
    s.clock.advance(ControllerConfig().dispatch_repair_after_ms + 1)  # the delivery looks lost
    sweep_workspace(s.ctx, "default", WS, ControllerConfig())
    [repair] = [json.loads(t.body) for t in s.queue.take()]
    assert repair["attempt"] == envelope["attempt"] and repair["taskToken"] != envelope["taskToken"]
    assert _iat(s.ctx, repair) == _iat(s.ctx, envelope)
