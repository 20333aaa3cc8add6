"""Sensors at deploy and the sensor projection (automation §3, §5, §6.8), through the services."""

from __future__ import annotations

from pathlib import Path

import pytest
from servo.core.errors import Conflict, InvalidInput
from servo.core.sensor_rows import SensorRunItemRow, table_rows
from servo.services import sensors
from servo.services._compaction_ledger import read_events
from servo.services.context import ServiceContext
from servo.services.sensor_projection import rebuild_sensors, refresh_sensors

from tests.services.sensor_support import T, W, deploy, ledger_names, poll, push, run_status, show
from tests.support.context import make_context


@pytest.fixture
def ctx(tmp_path: Path) -> ServiceContext:
    return make_context(tmp_path)[0]


def test_a_deployed_sensor_is_version_1_an_equal_redeploy_writes_nothing_and_a_change_is_version_2(
    ctx: ServiceContext,
) -> None:
    deploy(ctx, poll())
    assert show(ctx)["definitionVersion"] == 1 and show(ctx)["status"] == "PAUSED"
    assert show(ctx)["stateVersion"] == 0 and show(ctx)["definition"]["kind"] == "POLL"
    before = ledger_names(ctx)
    deploy(ctx, poll(), code="cv2")
    assert ledger_names(ctx) == before and show(ctx)["definitionVersion"] == 1
    deploy(ctx, poll(minimumIntervalSeconds=60), code="cv3")
    assert show(ctx)["definitionVersion"] == 2
    assert show(ctx)["definition"]["minimumIntervalSeconds"] == 60


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (poll(target=["ns.zzz"]), "sensors[0].target"),
        (poll(target=[]), "sensors[0].target"),
        (poll(minimumIntervalSeconds=5), "sensors[0].minimumIntervalSeconds"),
        (poll(id="Bad-Id"), "sensors[0].id"),
        (run_status(monitoredAssets=["ns.nope"]), "sensors[0].monitoredAssets"),
        (poll(kind="CRON"), "sensors[0].kind"),
    ],
)
def test_a_bad_sensor_is_a_400_naming_the_field_and_nothing_is_stored(
    ctx: ServiceContext, entry: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        deploy(ctx, entry)
    assert caught.value.details["field"] == field
    assert ledger_names(ctx) == []
    assert not ctx.workspace_store(T, W).list("manifests/")


def test_duplicate_sensor_ids_are_refused(ctx: ServiceContext) -> None:
    with pytest.raises(InvalidInput) as caught:
        deploy(ctx, poll(), push("files"))
    assert caught.value.details["field"] == "sensors[1].id"


def test_a_replay_writes_nothing_a_disable_survives_a_change_and_a_drop_is_removed(
    ctx: ServiceContext,
) -> None:
    deploy(ctx, poll(defaultEnabled=True), key="k")
    before = ledger_names(ctx)
    assert deploy(ctx, poll(defaultEnabled=True), key="k")[0] == 200
    assert ledger_names(ctx) == before
    assert show(ctx)["enabled"] is True
    sensors.set_sensor_enabled(ctx, T, W, "files", False)
    deploy(ctx, poll(defaultEnabled=True, timeoutSeconds=30), code="cv2")
    assert show(ctx)["enabled"] is False and show(ctx)["definitionVersion"] == 2
    deploy(ctx, code="cv3")
    assert show(ctx)["status"] == "REMOVED"
    with pytest.raises(Conflict) as caught:
        sensors.set_sensor_enabled(ctx, T, W, "files", True)
    assert caught.value.details["conflictType"] == "DEFINITION_REMOVED"


def test_a_replay_after_a_crash_before_the_ledger_completes_the_planned_sensor_events(
    ctx: ServiceContext,
) -> None:
    deploy(ctx, poll(), key="k")
    store = ctx.workspace_store(T, W)
    for name in ledger_names(ctx):
        store.delete(name)  # as if the deploy had died between its manifest record and the ledger
    store.delete("automation/sensors/_head.json")
    assert deploy(ctx, poll(), key="k")[0] == 200
    assert show(ctx)["definitionVersion"] == 1


def test_enable_and_disable_bump_the_state_version_once(ctx: ServiceContext) -> None:
    deploy(ctx, poll())
    on = sensors.set_sensor_enabled(ctx, T, W, "files", True)
    assert on == {"sensorId": "files", "enabled": True, "stateVersion": 1, "changed": True}
    again = sensors.set_sensor_enabled(ctx, T, W, "files", True)
    assert again["changed"] is False and again["stateVersion"] == 1
    off = sensors.set_sensor_enabled(ctx, T, W, "files", False)
    assert off["changed"] and off["stateVersion"] == 2 and show(ctx)["status"] == "PAUSED"


def test_H1_the_live_sensor_tables_equal_a_rebuild_from_the_ledger(ctx: ServiceContext) -> None:
    deploy(ctx, poll(), push(), run_status())
    sensors.set_sensor_enabled(ctx, T, W, "inbox", True)
    sensors.receive_push(ctx, T, W, "inbox", {"message": {"messageId": "m1", "data": "aGk="}})
    sensors.set_sensor_enabled(ctx, T, W, "files", True)
    item = SensorRunItemRow("on_failure", "run:r1", "r1", "FAILED", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    live = refresh_sensors(ctx, T, W, run_items=[item])
    events = read_events(ctx.workspace_store(T, W), ledger_names(ctx), T, W).events
    rebuilt = rebuild_sensors(events, [item])
    assert table_rows(live) == table_rows(rebuilt)
    assert [r.item_id for r in table_rows(live)["sensor_inbox"]] == ["msg:m1", "run:r1"]
    # And what was published reads back as the same tables (a fresh instance, no cache).
    fresh = make_context(Path(str(ctx.settings.data_dir)))[0]
    assert table_rows(refresh_sensors(fresh, T, W)) == table_rows(rebuilt)
