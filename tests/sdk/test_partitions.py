from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from servo import DailyPartitions, HourlyPartitions, StaticPartitions, TimePartitions
from servo.core.errors import InvalidPartitionKey
from servo.core.keys import PartitionKey, parse_partition_key
from servo.sdk import dimension_from_manifest, partition_key_from_cli
from servo.sdk._partitions import resolve_partition

from tests.conftest import load_fixture


@pytest.mark.parametrize(
    ("dimension", "text", "canonical"),
    [
        (DailyPartitions(), "2025-01-15", "date=d:2025-01-15"),
        (DailyPartitions("day"), " 2024-02-29 ", "day=d:2024-02-29"),
        (HourlyPartitions(), "2025-01-15T10", "hour=t:2025-01-15T10:00:00.000000Z"),
        (HourlyPartitions(), "2025-01-15T10:00:00Z", "hour=t:2025-01-15T10:00:00.000000Z"),
        (HourlyPartitions(), "2025-01-15 12:00+02:00", "hour=t:2025-01-15T10:00:00.000000Z"),
        (HourlyPartitions(), "2025-01-15T10:00:00.000000Z", "hour=t:2025-01-15T10:00:00.000000Z"),
        (TimePartitions("month", "month"), "2025-03", "month=d:2025-03-01"),
        (TimePartitions("month", "month"), "2025-03-01", "month=d:2025-03-01"),
        (TimePartitions("year", "year"), "2025", "year=d:2025-01-01"),
        (StaticPartitions("region", ["us-east", "eu"]), "us-east", "region=s:dXMtZWFzdA"),
    ],
)
def test_cli_values_become_canonical_keys_tagged_by_dimension_kind(
    dimension: TimePartitions | StaticPartitions, text: str, canonical: str
) -> None:
    assert partition_key_from_cli([dimension], {dimension.name: text}) == canonical
    # The same answer from the manifest form the CLI reads back from the control plane.
    manifest_form: list[dict[str, Any]] = [dimension.to_manifest()]
    assert partition_key_from_cli(manifest_form, {dimension.name: text}) == canonical


def test_multi_dimensional_keys_are_sorted_by_dimension_name() -> None:
    dims: list[TimePartitions | StaticPartitions] = [
        StaticPartitions("region", ["us-east"]),
        DailyPartitions(),
    ]
    key = partition_key_from_cli(dims, {"region": "us-east", "date": "2025-01-15"})
    assert key == "date=d:2025-01-15,region=s:dXMtZWFzdA"  # the contracts §3 worked example


def test_static_values_match_the_golden_string_encodings() -> None:
    cases = load_fixture("partition_key_cases.json")
    cases = cases["cases"] if isinstance(cases, dict) else cases
    checked = 0
    for case in cases:
        dims = case["dimensions"]
        if len(dims) == 1 and next(iter(dims.values()))["type"] == "string":
            ((name, spec),) = dims.items()
            got = partition_key_from_cli([StaticPartitions(name, [spec["value"]])], {name: spec["value"]})
            assert got == case["expected_canonical"], case["name"]
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize(
    ("dims", "values", "message"),
    [
        ([DailyPartitions()], {"date": "2025-01-15", "region": "eu"}, "unknown partition dimension"),
        ([DailyPartitions(), StaticPartitions("region", ["eu"])], {"date": "2025-01-15"}, "missing"),
        ([StaticPartitions("region", ["eu"])], {"region": "us"}, "not one of"),
        ([DailyPartitions()], {"date": "2025-13-01"}, "month"),
        ([DailyPartitions()], {"date": "2025-1-5"}, "YYYY-MM-DD"),
        ([DailyPartitions()], {"date": "1969-12-31"}, "1970"),
        ([DailyPartitions()], {"date": "2025-02-29"}, "not a valid date"),
        ([DailyPartitions(start="2025-01-01")], {"date": "2024-12-31"}, "before the first partition"),
        ([HourlyPartitions()], {"hour": "2025-01-15T10:30"}, "not on the hour"),
        ([HourlyPartitions()], {"hour": "2025-01-15"}, "not an hour"),
        ([TimePartitions("m", "month")], {"m": "2025-03-15"}, "not the start of a month"),
        ([], {"date": "2025-01-15"}, "not partitioned"),
    ],
)
def test_bad_cli_values_are_clear_errors(
    dims: list[TimePartitions | StaticPartitions], values: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidPartitionKey, match=message):
        partition_key_from_cli(dims, values)


def test_unpartitioned_without_values_is_the_empty_key() -> None:
    assert partition_key_from_cli([], {}) == ""


@pytest.mark.parametrize(
    "build",
    [
        lambda: TimePartitions("date", "week"),  # type: ignore[arg-type]
        lambda: DailyPartitions("Date"),
        lambda: StaticPartitions("region", []),
        lambda: StaticPartitions("region", ["a", "a"]),
        lambda: StaticPartitions("region", "abc"),
        lambda: dimension_from_manifest({"name": "x", "kind": "tenant"}),
    ],
)
def test_bad_dimension_declarations(build: object) -> None:
    with pytest.raises(InvalidPartitionKey):
        build()  # type: ignore[operator]


def test_dimensions_round_trip_through_the_manifest_form() -> None:
    for dim in (
        DailyPartitions(start=date(2024, 1, 1)),
        HourlyPartitions(start="2024-01-01T00"),
        StaticPartitions("region", ["b", "a"]),
    ):
        rebuilt = dimension_from_manifest(dim.to_manifest())
        assert rebuilt.to_manifest() == dim.to_manifest()
    assert HourlyPartitions(start="2024-01-01T00").to_manifest() == {
        "name": "hour",
        "kind": "time",
        "granularity": "hour",
        "start": "2024-01-01T00:00:00.000000Z",
    }


def test_resolve_partition_decodes_python_values_and_checks_dimensions() -> None:
    dims = (DailyPartitions(), HourlyPartitions(), StaticPartitions("region", ["eu"]))
    key = PartitionKey.from_dimensions(
        {
            "date": ("date", "2025-01-15"),
            "hour": ("timestamp", "2025-01-15T10:00:00.000000Z"),
            "region": ("string", "eu"),
        }
    ).render()
    part = resolve_partition(dims, key)
    assert part.canonical == key and part.key == parse_partition_key(key)
    assert part["date"] == date(2025, 1, 15)
    assert part["hour"] == datetime(2025, 1, 15, 10, tzinfo=UTC)
    assert part["region"] == "eu"
    assert bool(part) and not resolve_partition((), None)

    with pytest.raises(
        InvalidPartitionKey, match="run is for partition date=2025-01-15, but the asset is part"
    ):
        resolve_partition(dims, "date=d:2025-01-15")
    with pytest.raises(InvalidPartitionKey, match="not partitioned"):
        resolve_partition((), "date=d:2025-01-15")
    assert str(part) == "date=2025-01-15, hour=2025-01-15T10:00:00Z, region=eu"  # never the encoding
    assert str(resolve_partition((DailyPartitions(),), "date=d:2025-01-15")) == "2025-01-15"
    with pytest.raises(InvalidPartitionKey, match="'2025-01-15' was given as text, not as a day"):
        resolve_partition((DailyPartitions(),), "date=s:MjAyNS0wMS0xNQ")  # the reference CLI's string tag
    with pytest.raises(InvalidPartitionKey, match="not one of"):
        resolve_partition((StaticPartitions("region", ["eu"]),), "region=s:dXM")
    with pytest.raises(InvalidPartitionKey, match="not on the hour"):
        resolve_partition((HourlyPartitions(),), "hour=t:2025-01-15T10:30:00.000000Z")
    # The key grammar takes Feb 29 of any year (contracts §3); a daily partition cannot be one.
    with pytest.raises(InvalidPartitionKey, match="not a valid date"):
        resolve_partition((DailyPartitions(),), "date=d:2025-02-29")
    with pytest.raises(InvalidPartitionKey, match="not the start of a month"):
        resolve_partition((TimePartitions("m", "month"),), "m=d:2025-02-02")
