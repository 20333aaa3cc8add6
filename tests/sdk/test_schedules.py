"""``ScheduleDefinition`` and ``@schedule`` (automation §3): validated at definition, one manifest form."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import servo
from servo.core.schedules import parse_schedule
from servo.sdk import DailyPartitions, ScheduleDefinition, ScheduleDefinitionError, asset, schedule
from servo.sdk._schedules import SCHEDULE_ATTR, schedule_of


@asset(namespace="sales", partitions=DailyPartitions(start="2025-01-01"))
def orders(ctx: Any) -> None:
    """Orders of a day."""


def test_a_definition_object_has_the_spec_defaults_and_its_manifest_form() -> None:
    nightly = ScheduleDefinition(
        "nightly", "0 1 * * *", target=[orders, "sales/refunds"], partition="previous"
    )
    assert nightly.target == ("sales.orders", "sales.refunds")
    assert nightly.to_manifest() == {
        "id": "nightly",
        "cron": "0 1 * * *",
        "timezone": "UTC",
        "target": ["sales.orders", "sales.refunds"],
        "partition": "previous",
        "labels": {},
        "catchupWindowMinutes": 60,
        "maxCatchupTicks": 5,
        "defaultEnabled": False,
    }
    # Deploy reads the same form back to the same definition and hash.
    assert parse_schedule(nightly.to_manifest()) == nightly.spec
    assert parse_schedule(nightly.to_manifest()).definition_hash == nightly.definition_hash


def test_the_decorator_names_the_schedule_after_the_function_and_never_runs_it() -> None:
    calls: list[str] = []

    @schedule(cron="@daily", target=orders, timezone="Europe/London", partition={"date": date(2025, 2, 1)})
    def daily_orders() -> None:
        calls.append("ran")

    definition = schedule_of(daily_orders)
    assert getattr(daily_orders, SCHEDULE_ATTR) is definition
    assert definition.id == "daily_orders"
    assert definition.to_manifest()["partition"] == {"date": "2025-02-01"}
    assert definition.to_manifest()["timezone"] == "Europe/London"
    assert definition.code is not None and definition.code.function == "daily_orders"
    assert calls == []


def test_the_decorator_takes_an_explicit_name_and_every_option() -> None:
    @schedule(
        cron="*/15 * * * *",
        target="sales.orders",
        partition={"date": datetime(2025, 3, 1, tzinfo=UTC).date()},
        labels={"team": "sales"},
        catchup_window_minutes=10_080,
        max_catchup_ticks=1000,
        default_enabled=True,
        name="quarter_hourly",
    )
    def anything() -> None:
        pass

    manifest = schedule_of(anything).to_manifest()
    assert (manifest["id"], manifest["labels"], manifest["defaultEnabled"]) == (
        "quarter_hourly",
        {"team": "sales"},
        True,
    )
    assert (manifest["catchupWindowMinutes"], manifest["maxCatchupTicks"]) == (10_080, 1000)


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"target": []}, "target", "non-empty"),
        ({"target": [42]}, "target", "not an asset key"),
        ({"target": {"a": "b"}}, "target", "an asset or a list"),
        ({"cron": "0 0 * * * *"}, "cron", "6 fields"),
        ({"cron": "0 0 30 2 *"}, "cron", "never fire"),
        ({"timezone": "Not/AZone"}, "timezone", "not an IANA time zone"),
        ({"id": "Nightly"}, "id", "must match"),
        ({"catchup_window_minutes": 0}, "catchupWindowMinutes", "1..10080"),
        ({"max_catchup_ticks": 1001}, "maxCatchupTicks", "1..1000"),
        ({"labels": {"servo.parent_run_id": "x"}}, "labels", "reserved"),
        ({"partition": "yesterday"}, "partition", "'previous' or 'current'"),
        ({"default_enabled": 1}, "defaultEnabled", "true or false"),
    ],
)
def test_s3_bad_arguments_fail_at_definition_naming_the_field(
    kwargs: dict[str, Any], field: str, words: str
) -> None:
    arguments = {"id": "nightly", "cron": "0 1 * * *", "target": orders, **kwargs}
    with pytest.raises(ScheduleDefinitionError, match=words) as err:
        ScheduleDefinition(**arguments)
    assert err.value.details["field"] == field
    assert err.value.http_status == 400


@asset(namespace="sales")
def totals(ctx: Any) -> None:
    """Unpartitioned."""


@pytest.mark.parametrize(
    ("target", "partition", "words"),
    [
        (orders, None, "give a partition rule"),
        (totals, "previous", "not partitioned"),
        ([orders, totals], "previous", "partitioned differently"),
        (orders, {"date": "2024-12-31"}, "before the first partition 2025-01-01"),
    ],
)
def test_a_rule_that_cannot_fit_asset_objects_fails_at_definition(
    target: Any, partition: Any, words: str
) -> None:
    with pytest.raises(ScheduleDefinitionError, match=words):
        ScheduleDefinition("nightly", "0 1 * * *", target=target, partition=partition)


def test_string_targets_leave_the_rule_to_deploy() -> None:
    # The asset behind a key is unknown until the manifest is built; deploy checks it then.
    ScheduleDefinition("nightly", "0 1 * * *", target=["sales.orders", orders], partition=None)
    ScheduleDefinition("nightly", "0 1 * * *", target=totals.__servo_asset__, partition=None)


def test_a_bad_decorated_schedule_points_at_its_function() -> None:
    with pytest.raises(ScheduleDefinitionError) as err:

        @schedule(cron="0 1 * * *", target=orders, timezone="Not/AZone")
        def broken() -> None:
            pass

    assert err.value.message.startswith(f"{__file__}:")
    assert "schedule 'broken'" in err.value.message
    assert err.value.details["file"] == __file__


def test_schedule_of_refuses_other_objects() -> None:
    with pytest.raises(TypeError, match="is not a schedule"):
        schedule_of(orders)


def test_servo_exports_the_schedule_api() -> None:
    assert servo.schedule is schedule
    assert servo.ScheduleDefinition is ScheduleDefinition
