"""``@sensor``, ``@run_status_sensor``, ``RunRequest``, ``SkipReason`` and the sensor context
(automation §3): validated at definition, one manifest form, results normalized for the worker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import servo
from servo.core.sensors import check_result_requests, parse_sensor
from servo.sdk import (
    RunRequest,
    SensorContext,
    SensorDefinitionError,
    SkipReason,
    asset,
    run_status_sensor,
    sensor,
)
from servo.sdk._sensors import SENSOR_ATTR, PushMessage, evaluation_outcome, sensor_of

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


@asset(namespace="raw")
def files(ctx: Any) -> None:
    """Raw files."""


@sensor(target=[files], minimum_interval_seconds=60)
def new_files(ctx: SensorContext) -> list[RunRequest]:
    fresh = [name for name in ("a.csv", "b.csv") if name > (ctx.cursor or "")]
    if fresh:
        ctx.update_cursor(fresh[-1])
    return [RunRequest(run_key=name) for name in fresh]


def test_the_decorator_records_a_definition_with_the_spec_defaults() -> None:
    definition = sensor_of(new_files)
    assert getattr(new_files, SENSOR_ATTR) is definition
    assert definition.to_manifest() == {
        "id": "new_files",
        "kind": "POLL",
        "target": ["raw.files"],
        "minimumIntervalSeconds": 60,
        "timeoutSeconds": 60,
        "defaultEnabled": False,
    }
    assert parse_sensor(definition.to_manifest()) == definition.spec
    assert parse_sensor(definition.to_manifest()).definition_hash == definition.definition_hash


def test_the_package_exports_the_sensor_names() -> None:
    assert servo.sensor is sensor and servo.run_status_sensor is run_status_sensor
    assert servo.RunRequest is RunRequest and servo.SkipReason is SkipReason
    assert servo.SensorContext is SensorContext


def test_push_and_run_status_sensors_have_their_kinds() -> None:
    @sensor(target="raw.files", push=True, name="inbox")
    def on_message(ctx: SensorContext) -> None: ...

    @run_status_sensor(monitored_assets=[files])
    def on_failure(ctx: SensorContext) -> None: ...

    assert sensor_of(on_message).to_manifest()["kind"] == "PUSH"
    alert = sensor_of(on_failure).to_manifest()
    assert alert == {
        "id": "on_failure",
        "kind": "RUN_STATUS",
        "runStatus": ["FAILED"],
        "monitoredAssets": ["raw.files"],
        "minimumIntervalSeconds": 30,
        "timeoutSeconds": 60,
        "defaultEnabled": False,
    }


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"target": [files], "minimum_interval_seconds": 9}, "minimumIntervalSeconds"),
        ({"target": [files], "minimum_interval_seconds": 86_401}, "minimumIntervalSeconds"),
        ({"target": [files], "timeout_seconds": 4}, "timeoutSeconds"),
        ({"target": [files], "timeout_seconds": 901}, "timeoutSeconds"),
        ({"target": []}, "target"),
        ({"target": [files], "name": "Bad-Id"}, "id"),
    ],
)
def test_a_bad_option_fails_at_definition_naming_the_field_and_the_line(
    options: dict[str, Any], field: str
) -> None:
    with pytest.raises(SensorDefinitionError) as caught:

        @sensor(**options)
        def broken(ctx: SensorContext) -> None: ...

    assert caught.value.details["field"] == field
    assert "test_sensors.py" in caught.value.message and caught.value.details["line"] > 0


def test_a_run_status_sensor_refuses_a_non_terminal_state() -> None:
    with pytest.raises(SensorDefinitionError, match="RUNNING") as caught:

        @run_status_sensor(run_status=["RUNNING"])
        def broken(ctx: SensorContext) -> None: ...

    assert caught.value.details["field"] == "runStatus"


def test_run_requests_refuse_reserved_labels_and_bad_keys_when_built() -> None:
    with pytest.raises(SensorDefinitionError, match=r"servo\.run") as caught:
        RunRequest(labels={"servo.run": "x"})
    assert caught.value.details["field"] == "labels"
    with pytest.raises(SensorDefinitionError):
        RunRequest(run_key="")
    with pytest.raises(SensorDefinitionError):
        RunRequest(partition_key=3)  # type: ignore[arg-type]
    assert RunRequest(asset_selection=files).asset_selection == ("raw.files",)


def test_the_context_keeps_the_last_cursor_update_and_refuses_one_over_16_kib() -> None:
    ctx = SensorContext("new_files", "new_files:v0:1", cursor="c0", now=NOW)
    assert (ctx.cursor_updated, ctx.next_cursor) == (False, "c0")
    ctx.update_cursor("c1")
    ctx.update_cursor("c2")
    assert (ctx.cursor, ctx.cursor_updated, ctx.next_cursor) == ("c0", True, "c2")
    with pytest.raises(SensorDefinitionError, match="16 KiB"):
        ctx.update_cursor("x" * 16_385)
    assert ctx.next_cursor == "c2"


def test_outcomes_of_every_return_shape() -> None:
    assert evaluation_outcome(None).status == "SKIPPED"
    assert evaluation_outcome(SkipReason("nothing new")).skip_reason == "nothing new"
    assert evaluation_outcome([]).status == "SKIPPED"
    one = RunRequest(run_key="a")
    assert evaluation_outcome(one).run_requests == (one,)
    assert evaluation_outcome([one, one]).status == "TRIGGERED"
    with pytest.raises(SensorDefinitionError, match="at most 100"):
        evaluation_outcome([one] * 101)
    with pytest.raises(SensorDefinitionError, match="dict"):
        evaluation_outcome([one, {"run_key": "b"}])
    with pytest.raises(SensorDefinitionError, match="int"):
        evaluation_outcome(3)


def test_a_call_gives_wire_requests_the_callback_accepts() -> None:
    definition = sensor_of(new_files)
    ctx = SensorContext("new_files", "new_files:v4:1", cursor="a.csv", now=NOW)
    outcome = evaluation_outcome(definition.fn(ctx))
    assert ctx.next_cursor == "b.csv"
    wire = [r.to_wire() for r in outcome.run_requests]
    checked = check_result_requests(definition.spec, ctx.evaluation_id, 4, wire, [], now_s=0)
    assert [c.run_key for c in checked] == ["sensor:new_files:b.csv"]


def test_a_push_context_carries_the_message() -> None:
    message = PushMessage("m1", b"{}", {"bucket": "b"})
    ctx = SensorContext("inbox", "inbox:v0:1", cursor=None, now=NOW, message=message)
    wire = RunRequest(partition_key={"date": "2025-01-15"}).to_wire(f"msg:{ctx.message.message_id}")  # type: ignore[union-attr]
    assert wire == {"labels": {}, "partitionKey": {"date": "2025-01-15"}, "itemId": "msg:m1"}
