"""Every service writes an event with the bytes it was made with (issue 21: CPU per task).

An event encoded when made, again for a record that keeps it (a backfill's reservation, a deploy's
planned schedule events, a sensor result's claim) and once more when appended cost two or three
canonical-JSON encodings where one does. These play the automation paths end to end and count the
encodings of each event written: one each.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from servo.core.canonical_json import canonical_bytes
from servo.core.events import event_id_from_object_name
from servo.services import backfills
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.schedule_sweep import sweep_schedules
from servo.services.sensor_sweep import sweep_sensors

from tests.services.sensor_support import deploy as deploy_sensors
from tests.services.sensor_support import poll, report, tasks
from tests.services.test_backfills import asset as partitioned_asset
from tests.services.test_backfills import days, work
from tests.support.context import T0, FakeClock, make_context

T, W = "acme", "prod"
# Modules that encoded events themselves; none should need to any more.
ENCODERS = (
    "servo.core.events",
    "servo.services.ledger",
    "servo.services.backfills",
    "servo.services.schedule_deploy",
    "servo.services.sensor_results",
)


@pytest.fixture
def encodings(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each event id was encoded from here on."""
    import importlib

    import servo.core.events as events_module

    counted: Counter[str] = Counter()
    original = events_module.encode_event

    def counting(event: Any) -> bytes:
        counted[event.event_id] += 1
        return original(event)

    for name in ENCODERS:
        monkeypatch.setattr(importlib.import_module(name), "encode_event", counting, raising=False)
    return counted


def _written(ctx: ServiceContext) -> set[str]:
    store = ctx.workspace_store(T, W)
    return {event_id_from_object_name(m.name) for m in store.list("ledger/orchestration/")}


def _each_written_once(ctx: ServiceContext, encodings: Counter[str]) -> None:
    written = _written(ctx)
    assert written
    assert {i: n for i, n in encodings.items() if i in written and n != 1} == {}
    assert written <= set(encodings)


def test_a_scheduled_run_encodes_each_of_its_events_once(tmp_path: Path, encodings: Counter[str]) -> None:
    clock = FakeClock(T0 - 1000)
    ctx, _, _ = make_context(tmp_path, clock=clock)
    every = {"id": "every", "cron": "* * * * *", "target": ["ns.a"], "defaultEnabled": True}
    body = {
        "manifestVersion": "1.0",
        "codeVersionId": "cv1",
        "assets": [{"key": "ns.a", "id": "id-ns.a", "dependencies": []}],
        "schedules": [every],
    }
    assert deploy_manifest(ctx, T, W, canonical_bytes(body), None)[0] == 201
    clock.now_ms = T0 + 30_000
    assert sweep_schedules(ctx, T, W) == {"ticks": 1, "runRequests": 1}
    _each_written_once(ctx, encodings)


def test_a_sensor_evaluation_and_its_run_encode_each_event_once(
    tmp_path: Path, encodings: Counter[str]
) -> None:
    ctx, _, queue = make_context(tmp_path)
    deploy_sensors(ctx, poll(defaultEnabled=True))
    sweep_sensors(ctx, T, W)
    [task] = tasks(queue)
    report(ctx, task, status="TRIGGERED", cursorUpdated=True, cursor="c1", runRequests=[{"runKey": "f1"}])
    _each_written_once(ctx, encodings)


def test_a_backfill_and_its_runs_encode_each_event_once(tmp_path: Path, encodings: Counter[str]) -> None:
    ctx, _, queue = make_context(tmp_path, clock=FakeClock(T0))
    body = {"manifestVersion": "1.0", "codeVersionId": "cv1", "assets": [partitioned_asset("ns.a")]}
    deploy_manifest(ctx, T, W, canonical_bytes(body), None)
    status, created = backfills.create_backfill(
        ctx, T, W, {"assets": ["ns.a"], "partitions": days(1, 2)}, "k1"
    )
    assert status == 201
    assert backfills.move_backfill(ctx, T, W, created["backfillId"], "pause", {})[0] == 202
    assert backfills.move_backfill(ctx, T, W, created["backfillId"], "resume", {})[0] == 202
    assert work(ctx, queue) == 2
    _each_written_once(ctx, encodings)
