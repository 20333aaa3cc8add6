"""Schedules at deploy and their status (automation §7 S1–S5), through the services on a local store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from servo.core.canonical_json import canonical_bytes
from servo.core.errors import Conflict, InvalidInput
from servo.services import schedules
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.schedule_projection import rebuild_schedules, refresh_schedules
from servo.store import ObjectStore

from tests.support.context import make_context

T, W = "acme", "prod"
DAY = {"name": "date", "kind": "time", "granularity": "day", "start": "2025-01-01"}


def schedule(sid: str = "nightly", **fields: Any) -> dict[str, Any]:
    return {"id": sid, "cron": "0 1 * * *", "target": ["raw.a"], **fields}


def manifest(*entries: dict[str, Any], code: str = "cv1", partitioned: bool = False) -> dict[str, Any]:
    dims = [DAY] if partitioned else []
    asset = {"key": "raw.a", "id": "id-a", "partitioning": {"dimensions": dims}}
    return {"manifestVersion": "1.0", "codeVersionId": code, "assets": [asset], "schedules": list(entries)}


def deploy(ctx: ServiceContext, body: dict[str, Any], key: str | None = None) -> tuple[int, dict[str, Any]]:
    return deploy_manifest(ctx, T, W, canonical_bytes(body), key)


def ledger_names(ctx: ServiceContext) -> list[str]:
    store: ObjectStore = ctx.workspace_store(T, W)
    return sorted(m.name for m in store.list("ledger/orchestration/"))


def show(ctx: ServiceContext, sid: str = "nightly") -> dict[str, Any]:
    return schedules.get_schedule(ctx, T, W, sid)


@pytest.fixture
def ctx(tmp_path: Path) -> ServiceContext:
    return make_context(tmp_path)[0]


def test_S1_same_definition_is_version_1_without_an_event_and_a_new_cron_is_version_2(
    ctx: ServiceContext,
) -> None:
    deploy(ctx, manifest(schedule()))
    assert show(ctx)["definitionVersion"] == 1 and show(ctx)["status"] == "PAUSED"
    before = ledger_names(ctx)
    deploy(ctx, manifest(schedule(), code="cv2"))
    assert ledger_names(ctx) == before and show(ctx)["definitionVersion"] == 1
    deploy(ctx, manifest(schedule(cron="0 2 * * *"), code="cv3"))
    assert show(ctx)["definitionVersion"] == 2 and show(ctx)["definition"]["cron"] == "0 2 * * *"


def test_S2_disable_and_enable_bump_the_status_version_once(ctx: ServiceContext) -> None:
    deploy(ctx, manifest(schedule(defaultEnabled=True)))
    assert show(ctx)["enabled"] and show(ctx)["statusVersion"] == 0
    off = schedules.set_schedule_enabled(ctx, T, W, "nightly", False)
    assert off == {"scheduleId": "nightly", "enabled": False, "statusVersion": 1, "changed": True}
    again = schedules.set_schedule_enabled(ctx, T, W, "nightly", False)
    assert again["changed"] is False and again["statusVersion"] == 1
    on = schedules.set_schedule_enabled(ctx, T, W, "nightly", True)
    assert on["changed"] and on["statusVersion"] == 2
    assert schedules.set_schedule_enabled(ctx, T, W, "nightly", True)["changed"] is False


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (schedule(target=[]), "schedules[0].target"),
        (schedule(cron="0 1 * *"), "schedules[0].cron"),
        (schedule(cron="0 0 1 * * *"), "schedules[0].cron"),
        (schedule(cron="0 0 30 2 *"), "schedules[0].cron"),
        (schedule(timezone="Not/AZone"), "schedules[0].timezone"),
        (schedule(target=["raw.missing"]), "schedules[0].target"),
        (schedule(partition="previous"), "schedules[0].partition"),
    ],
)
def test_S3_a_bad_schedule_is_a_400_naming_the_field_and_nothing_is_stored(
    ctx: ServiceContext, entry: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        deploy(ctx, manifest(entry))
    assert caught.value.http_status == 400 and caught.value.details["field"] == field
    assert field.split(".")[1] in caught.value.message
    assert list(ctx.workspace_store(T, W).list("")) == []


def test_S3_duplicate_schedule_ids_are_refused(ctx: ServiceContext) -> None:
    with pytest.raises(InvalidInput) as caught:
        deploy(ctx, manifest(schedule(), schedule()))
    assert caught.value.details["field"] == "schedules[1].id"


def test_S4_a_reused_idempotency_key_with_another_manifest_is_409_and_definitions_stay(
    ctx: ServiceContext,
) -> None:
    deploy(ctx, manifest(schedule()), key="k")
    before = ledger_names(ctx)
    with pytest.raises(Conflict):
        deploy(ctx, manifest(schedule(cron="5 1 * * *")), key="k")
    assert ledger_names(ctx) == before and show(ctx)["definition"]["cron"] == "0 1 * * *"


def test_S5_replay_writes_nothing_disable_survives_a_cron_change_and_a_drop_is_removed(
    ctx: ServiceContext,
) -> None:
    deploy(ctx, manifest(schedule(defaultEnabled=True)), key="k")
    before = ledger_names(ctx)
    assert deploy(ctx, manifest(schedule(defaultEnabled=True)), key="k")[0] == 200
    assert ledger_names(ctx) == before
    schedules.set_schedule_enabled(ctx, T, W, "nightly", False)
    deploy(ctx, manifest(schedule(cron="0 3 * * *", defaultEnabled=True), code="cv2"))
    assert show(ctx)["enabled"] is False and show(ctx)["definitionVersion"] == 2
    deploy(ctx, manifest(code="cv3"))
    assert show(ctx)["status"] == "REMOVED"
    with pytest.raises(Conflict) as caught:
        schedules.set_schedule_enabled(ctx, T, W, "nightly", True)
    assert caught.value.details["conflictType"] == "DEFINITION_REMOVED"
    deploy(ctx, manifest(schedule(cron="0 3 * * *", defaultEnabled=True), code="cv4"))
    assert show(ctx)["status"] == "PAUSED" and show(ctx)["definitionVersion"] == 2


def test_a_replay_after_a_crash_before_the_ledger_completes_the_planned_events(ctx: ServiceContext) -> None:
    deploy(ctx, manifest(schedule()), key="k")
    store = ctx.workspace_store(T, W)
    for name in ledger_names(ctx):
        store.delete(name)  # as if the deploy had died between its manifest record and the ledger
    store.delete("automation/schedules/_head.json")
    assert deploy(ctx, manifest(schedule()), key="k")[0] == 200
    assert show(ctx)["definitionVersion"] == 1


def test_the_live_tables_equal_a_rebuild_from_the_ledger(ctx: ServiceContext) -> None:
    from servo.services._compaction_ledger import read_events

    deploy(ctx, manifest(schedule(), schedule("hourly", cron="@hourly")))
    schedules.set_schedule_enabled(ctx, T, W, "hourly", True)
    deploy(ctx, manifest(schedule(cron="0 4 * * *"), code="cv2"))
    live = refresh_schedules(ctx, T, W)
    events = read_events(ctx.workspace_store(T, W), ledger_names(ctx), T, W).events
    rebuilt = rebuild_schedules(events)
    assert json.dumps(sorted(map(repr, live.schedules.values()))) == json.dumps(
        sorted(map(repr, rebuilt.schedules.values()))
    )
    assert live.ticks == rebuilt.ticks and live.requests == rebuilt.requests


def test_schedules_null_is_none_and_a_non_list_is_a_400_naming_the_field(ctx: ServiceContext) -> None:
    body = {**manifest(), "schedules": None}
    assert deploy(ctx, body)[0] == 201
    with pytest.raises(InvalidInput) as caught:
        deploy(ctx, {**manifest(), "schedules": "nightly"})
    assert caught.value.details["field"] == "schedules"
