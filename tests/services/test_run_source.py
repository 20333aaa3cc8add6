"""GetRun and ListRuns show where a run came from: a schedule's tick, a rerun's parent, a person."""

from __future__ import annotations

from pathlib import Path

from servo.core.canonical_json import canonical_bytes
from servo.services import runs, schedules
from servo.services.manifests import deploy_manifest
from servo.services.schedule_sweep import sweep_schedules
from servo.services.trigger import trigger_run

from tests.support.context import T0, FakeClock, make_context

T, W = "acme", "prod"


def test_a_schedule_run_shows_its_schedule_and_tick_in_get_run_and_the_run_list(tmp_path: Path) -> None:
    clock = FakeClock(T0 - 1000)
    ctx, _, _ = make_context(tmp_path, clock=clock)
    manifest = {
        "manifestVersion": "1.0",
        "codeVersionId": "cv1",
        "assets": [{"key": "ns.a", "id": "id-a", "dependencies": [], "partitioning": {"dimensions": []}}],
        "schedules": [{"id": "every", "cron": "* * * * *", "target": ["ns.a"], "defaultEnabled": True}],
    }
    deploy_manifest(ctx, T, W, canonical_bytes(manifest), None)
    clock.now_ms = T0 + 30_000
    sweep_schedules(ctx, T, W)
    (tick,) = schedules.list_ticks(ctx, T, W, "every", {})["ticks"]
    _, manual = trigger_run(ctx, T, W, {"selection": ["ns.a"], "runKey": "by-hand"})

    shown = runs.get_run(ctx, T, W, tick["runId"])
    assert shown["trigger"] == {"type": "cron", "scheduleId": "every", "tickId": tick["tickId"]}
    assert shown["runKey"] == tick["runKey"]
    listed = {r["runId"]: r["trigger"] for r in runs.list_runs(ctx, T, W, {})["runs"]}
    assert listed[tick["runId"]] == shown["trigger"]
    assert listed[manual["runId"]]["type"] == "manual"
    assert runs.get_run(ctx, T, W, manual["runId"])["trigger"]["type"] == "manual"
