"""The sweep's schedule step on an injected clock (automation §7 S6–S10, S12, S14, R5)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servo.core.canonical_json import canonical_bytes
from servo.core.events import (
    PlanCreated,
    RunTriggered,
    ScheduleDefinitionUpserted,
    ScheduleTicked,
    make_event,
)
from servo.services import schedules
from servo.services._compaction_ledger import read_events
from servo.services.context import ServiceContext
from servo.services.ledger import append_events
from servo.services.manifests import deploy_manifest
from servo.services.schedule_projection import rebuild_schedules, refresh_schedules
from servo.services.schedule_sweep import sweep_schedules
from servo.services.trigger import trigger_run
from servo.store.counting import CountingStore

from tests.support.context import T0, FakeClock, make_context

T, W = "acme", "prod"
MINUTE = 60_000
DAY = {"name": "date", "kind": "time", "granularity": "day", "start": "2027-01-15"}


def asset(key: str, *deps: str, partitioned: bool = False) -> dict[str, Any]:
    return {
        "key": key,
        "id": f"id-{key}",
        "dependencies": [{"upstreamKey": d} for d in deps],
        "partitioning": {"dimensions": [DAY] if partitioned else []},
    }


def deploy(
    ctx: ServiceContext, *entries: dict[str, Any], partitioned: bool = False, code: str = "cv1"
) -> None:
    assets = [asset("ns.a", partitioned=partitioned), asset("ns.b", "ns.a", partitioned=partitioned)]
    assets.append(asset("ns.c", "ns.b", partitioned=partitioned))
    body = {"manifestVersion": "1.0", "codeVersionId": code, "assets": assets, "schedules": list(entries)}
    deploy_manifest(ctx, T, W, canonical_bytes(body), None)


def minutely(**fields: Any) -> dict[str, Any]:
    return {"id": "every", "cron": "* * * * *", "target": ["ns.a", "ns.b"], "defaultEnabled": True, **fields}


def ticks(ctx: ServiceContext) -> list[dict[str, Any]]:
    return schedules.list_ticks(ctx, T, W, "every", {})["ticks"]


def events_of(ctx: ServiceContext, kind: type) -> list[Any]:
    store = ctx.workspace_store(T, W)
    names = [m.name for m in store.list("ledger/orchestration/")]
    return [e.data for e in read_events(store, names, T, W).events if isinstance(e.data, kind)]


@pytest.fixture
def env(tmp_path: Path) -> tuple[ServiceContext, FakeClock]:
    clock = FakeClock(T0 - 1000)
    ctx, _, _ = make_context(tmp_path, clock=clock)
    return ctx, clock


def swept_once(env: tuple[ServiceContext, FakeClock]) -> tuple[ServiceContext, FakeClock]:
    """The minutely schedule deployed, then swept once 30 s after its first instant."""
    ctx, clock = env
    deploy(ctx, minutely())
    clock.now_ms = T0 + 30_000
    sweep_schedules(ctx, T, W)
    return ctx, clock


def test_S6_one_due_tick_is_one_triggered_tick_and_one_cron_run_named_by_it(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, clock = env
    deploy(ctx, minutely())
    clock.now_ms = T0 + 30_000
    assert sweep_schedules(ctx, T, W) == {"ticks": 1, "runRequests": 1}
    clock.now_ms = T0 + 90_000
    sweep_schedules(ctx, T, W)
    newest = ticks(ctx)[0]
    epoch = (T0 + MINUTE) // 1000
    assert newest["tickId"] == f"every:{epoch}" and newest["status"] == "TRIGGERED"
    assert newest["runKey"] == f"sched:every:{epoch}" and newest["requestStatus"] == "CREATED"
    runs = {e.run_id: e for e in events_of(ctx, RunTriggered)}
    assert newest["runId"] in runs and len(runs) == 2
    assert runs[newest["runId"]].trigger == {
        "type": "cron",
        "schedule_id": "every",
        "tick_id": newest["tickId"],
    }
    assert runs[newest["runId"]].run_key == newest["runKey"]


def test_R5_a_schedule_on_a_and_b_of_a_chain_plans_a_and_b_with_the_edge_and_no_c(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, _ = swept_once(env)
    (plan,) = events_of(ctx, PlanCreated)
    assert {t.key: tuple(t.depends_on) for t in plan.tasks} == {"ns.a": (), "ns.b": ("ns.a",)}


def test_S7_a_late_sweep_fires_at_most_max_ticks_oldest_first_within_the_window(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, clock = env
    deploy(ctx, minutely(maxCatchupTicks=2))
    clock.now_ms = T0 + 120 * MINUTE
    sweep_schedules(ctx, T, W)
    got = [t["scheduledFor"] for t in reversed(ticks(ctx))]
    assert len(got) == 2 and got[0] < got[1]
    assert got[0] == "2027-01-15T09:01:00Z"  # the window starts an hour before now


def test_S9_disabled_and_due_is_skipped_paused_and_enabling_does_not_replay(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, clock = env
    deploy(ctx, minutely(defaultEnabled=False))
    clock.now_ms = T0 + 150_000
    sweep_schedules(ctx, T, W)
    skipped = ticks(ctx)
    assert [t["status"] for t in skipped] == ["SKIPPED", "SKIPPED", "SKIPPED"]
    assert all(t["reason"] == "paused" and "runKey" not in t and "runId" not in t for t in skipped)
    schedules.set_schedule_enabled(ctx, T, W, "every", True)
    clock.now_ms = T0 + 170_000
    assert sweep_schedules(ctx, T, W)["ticks"] == 0
    assert events_of(ctx, RunTriggered) == []


def test_S10_a_partition_before_the_dimension_start_is_a_failed_tick_without_a_run(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, clock = env
    deploy(ctx, minutely(partition="previous"), partitioned=True)  # the day before 2027-01-15 is before start
    clock.now_ms = T0 + 30_000
    sweep_schedules(ctx, T, W)
    (tick,) = ticks(ctx)
    assert (
        tick["status"] == "FAILED" and "before the first partition" in tick["reason"] and "runId" not in tick
    )
    assert events_of(ctx, RunTriggered) == []


def test_S12_a_duplicated_sweep_and_a_tick_written_twice_give_one_tick_and_one_run(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, clock = swept_once(env)
    (first,) = events_of(ctx, ScheduleTicked)
    again = make_event(first, event_id=ctx.new_id(), timestamp_ms=clock.now_ms, tenant_id=T, workspace_id=W)
    append_events(ctx, T, W, [again])
    sweep_schedules(ctx, T, W)
    assert len(ticks(ctx)) == 1 and len(events_of(ctx, RunTriggered)) == 1
    assert ticks(ctx)[0]["requestStatus"] == "CREATED"


def test_S14_a_tick_carries_the_definition_version_of_its_evaluation(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, clock = swept_once(env)
    deploy(ctx, minutely(labels={"team": "data"}), code="cv2")
    clock.now_ms = T0 + 90_000
    sweep_schedules(ctx, T, W)
    assert [t["definitionVersion"] for t in ticks(ctx)] == [2, 1]


def test_the_live_schedule_tables_equal_a_rebuild_after_sweeps(env: tuple[ServiceContext, FakeClock]) -> None:
    ctx, clock = env
    deploy(ctx, minutely())
    for step in range(1, 4):
        clock.now_ms = T0 + step * MINUTE
        sweep_schedules(ctx, T, W)
    live = refresh_schedules(ctx, T, W)
    store = ctx.workspace_store(T, W)
    rebuilt = rebuild_schedules(read_events(store, [m.name for m in store.list("ledger/")], T, W).events)
    assert (live.schedules, live.ticks, live.requests) == (rebuilt.schedules, rebuilt.ticks, rebuilt.requests)


def test_a_workspace_that_never_had_a_schedule_costs_the_sweep_one_read(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, clock = env
    deploy(ctx)  # assets only
    counting = CountingStore(ctx.store)
    clock.now_ms = T0 + 30_000
    assert sweep_schedules(replace(ctx, store=counting), T, W) == {"ticks": 0, "runRequests": 0}
    done = counting.snapshot()
    assert (done.reads, done.lists, done.writes) == (1, 0, 0)
    assert list(ctx.workspace_store(T, W).list("automation/")) == []


def test_a_first_schedule_deploy_reads_the_recent_ledger_only(env: tuple[ServiceContext, FakeClock]) -> None:
    ctx, clock = env
    deploy(ctx)
    for _ in range(10):
        trigger_run(ctx, T, W, {"selection": ["ns.a"]})
    clock.now_ms = T0 + 60 * MINUTE  # those runs' ledger objects lie an hour back
    counting = CountingStore(ctx.store)
    deploy(replace(ctx, store=counting), minutely(), code="cv2")
    ledger_reads = counting.snapshot().reads
    assert schedules.get_schedule(ctx, T, W, "every")["definitionVersion"] == 1
    assert ledger_reads < 12  # manifest, index, head, and the deploy's own objects: not the old ledger


def test_S8_after_a_48_hour_outage_the_earliest_tick_is_inside_the_window(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, clock = env
    deploy(ctx, minutely(cron="*/10 * * * *", catchupWindowMinutes=60, maxCatchupTicks=1000))
    clock.now_ms = T0 + 48 * 60 * MINUTE
    sweep_schedules(ctx, T, W)
    fired = [t["scheduledFor"] for t in ticks(ctx)]
    assert len(fired) == 6 and min(fired) == "2027-01-17T07:10:00Z"  # > now - 60 min, never older
    assert len(events_of(ctx, RunTriggered)) == 6


def test_S16_a_daily_schedule_with_partition_previous_runs_yesterdays_partition(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, clock = env
    deploy(ctx, minutely(cron="0 1 * * *", partition="previous"), partitioned=True)
    clock.now_ms = T0 + 17 * 60 * MINUTE + 30_000  # 2027-01-16T01:00:30Z
    sweep_schedules(ctx, T, W)
    (tick,) = ticks(ctx)
    assert tick["scheduledFor"] == "2027-01-16T01:00:00Z" and tick["partitionKey"] == "date=d:2027-01-15"
    (plan,) = events_of(ctx, PlanCreated)
    assert {t.partition_key for t in plan.tasks} == {"date=d:2027-01-15"}


def test_S10_a_stored_definition_this_runtime_cannot_evaluate_fails_once_per_version(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, clock = env
    deploy(ctx, minutely())
    broken = {**minutely(), "timezone": "Mars/Olympus_Mons"}  # e.g. a zone missing from this tzdata
    upsert = ScheduleDefinitionUpserted("every", "m-broken", broken, "sha256:broken", 2)
    append_events(
        ctx,
        T,
        W,
        [make_event(upsert, event_id=ctx.new_id(), timestamp_ms=clock.now_ms, tenant_id=T, workspace_id=W)],
    )
    for step in (1, 2, 3):
        clock.now_ms = T0 + step * MINUTE
        sweep_schedules(ctx, T, W)
    (tick,) = ticks(ctx)
    assert tick["status"] == "FAILED" and "timezone" in tick["reason"] and tick["definitionVersion"] == 2
    assert events_of(ctx, RunTriggered) == []


def test_a_sweep_whose_projection_read_is_over_30_s_old_at_decision_time_ticks_nothing(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, clock = env
    deploy(ctx, minutely())
    # The projection is read at +30 s; by the time the sweep decides (every later clock reading), the
    # clock says +61.5 s: a disable written meanwhile would be missed, so this sweep must not decide.
    readings = iter([T0 + 30_000])
    slow = replace(ctx, clock_ms=lambda: next(readings, T0 + 61_500))
    assert sweep_schedules(slow, T, W) == {"ticks": 0, "runRequests": 0}
    assert ticks(ctx) == []
    clock.now_ms = T0 + 61_500
    assert sweep_schedules(ctx, T, W) == {"ticks": 2, "runRequests": 2}  # the next sweep owes both
    assert [t["status"] for t in ticks(ctx)] == ["TRIGGERED", "TRIGGERED"]


def test_a_sweep_30_s_behind_still_decides(env: tuple[ServiceContext, FakeClock]) -> None:
    ctx, _ = env
    deploy(ctx, minutely())
    readings = iter([T0 + 30_000])
    at_the_limit = replace(ctx, clock_ms=lambda: next(readings, T0 + 60_000))
    assert sweep_schedules(at_the_limit, T, W)["ticks"] == 2


def test_ticks_and_their_resolved_requests_go_after_30_days_and_are_never_fired_again(
    env: tuple[ServiceContext, FakeClock],
) -> None:
    ctx, clock = swept_once(env)
    (first,) = ticks(ctx)
    clock.now_ms = T0 + 30 * 24 * 60 * MINUTE + 90_000
    sweep_schedules(ctx, T, W)
    kept = ticks(ctx)
    assert first["tickId"] not in {t["tickId"] for t in kept}
    assert kept and all(t["status"] == "TRIGGERED" and t["requestStatus"] == "CREATED" for t in kept)
    live = refresh_schedules(ctx, T, W)
    assert f"tick:{first['tickId']}" not in live.requests
    store = ctx.workspace_store(T, W)
    history = read_events(store, [m.name for m in store.list("ledger/orchestration/")], T, W).events
    rebuilt = rebuild_schedules(history, now_ms=clock.now_ms)
    assert (rebuilt.schedules, rebuilt.ticks, rebuilt.requests) == (live.schedules, live.ticks, live.requests)
