"""Backfill partition selection (automation §4, §6.4; B2, B11): selectors, bounds, chunks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servo.core.backfill_partitions import (
    backfill_dimensions,
    check_backfill_settings,
    chunk_partitions,
    period_count,
    resolve_partitions,
)
from servo.core.errors import InvalidInput
from servo.core.partition_keys import PartitionKey, PartitionValue

DAILY = {"name": "date", "kind": "time", "granularity": "day", "start": "2025-01-01"}
HOURLY = {"name": "hour", "kind": "time", "granularity": "hour"}
MONTHLY = {"name": "month", "kind": "time", "granularity": "month", "start": "2024-01-01"}
REGION = {"name": "region", "kind": "static", "values": ["us", "eu", "ap"]}
NOW = int(datetime(2025, 3, 1, 12, 30, tzinfo=UTC).timestamp() * 1000)


def _day(d: str, region: str | None = None) -> str:
    dims: dict[str, PartitionValue] = {"date": PartitionValue("d", d)}
    if region is not None:
        dims["region"] = PartitionValue("s", region)
    return PartitionKey.of(dims).render()


def _range(start: Any, end: Any, **where: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"start": start, "end": end}
    if where:
        body["where"] = where
    return {"range": body}


def _field(exc: pytest.ExceptionInfo[InvalidInput]) -> str:
    return str(exc.value.details["field"])


def test_b_range_of_ten_days_is_ten_sorted_keys() -> None:
    keys = resolve_partitions(_range("2025-01-01", "2025-01-10"), [DAILY], now_ms=NOW)
    assert keys == tuple(_day(f"2025-01-{d:02d}") for d in range(1, 11))


def test_b11_days_by_static_region_without_where_is_every_pair_sorted() -> None:
    keys = resolve_partitions(_range("2025-01-01", "2025-01-02"), [DAILY, REGION], now_ms=NOW)
    assert keys == tuple(_day(d, r) for d in ("2025-01-01", "2025-01-02") for r in ("ap", "eu", "us"))


def test_b_where_picks_static_values_one_or_many() -> None:
    one = resolve_partitions(_range("2025-01-01", "2025-01-01", region="eu"), [DAILY, REGION], now_ms=NOW)
    assert one == (_day("2025-01-01", "eu"),)
    two = resolve_partitions(
        _range("2025-01-01", "2025-01-01", region=["us", "eu", "us"]), [DAILY, REGION], now_ms=NOW
    )
    assert two == (_day("2025-01-01", "eu"), _day("2025-01-01", "us"))


def test_b_hourly_and_monthly_ranges_step_by_their_granularity() -> None:
    hours = resolve_partitions(_range("2025-01-31T22:00:00Z", "2025-02-01T01:00:00Z"), [HOURLY], now_ms=NOW)
    assert [k.split(":", 1)[1] for k in hours] == [
        "2025-01-31T22:00:00.000000Z",
        "2025-01-31T23:00:00.000000Z",
        "2025-02-01T00:00:00.000000Z",
        "2025-02-01T01:00:00.000000Z",
    ]
    months = resolve_partitions(_range("2024-11", "2025-02"), [MONTHLY], now_ms=NOW)
    assert [k.split(":", 1)[1] for k in months] == ["2024-11-01", "2024-12-01", "2025-01-01", "2025-02-01"]


def test_b_current_period_is_the_newest_allowed() -> None:
    assert resolve_partitions(_range("2025-03-01", "2025-03-01"), [DAILY], now_ms=NOW) == (
        _day("2025-03-01"),
    )


@pytest.mark.parametrize(
    ("selector", "field"),
    [
        (_range("2025-01-10", "2025-01-01"), "partitions.range.start"),  # start after end
        (_range("2024-12-31", "2025-01-02"), "partitions.range.start"),  # before the dimension start
        (_range("2025-01-01", "2025-03-02"), "partitions.range.end"),  # future
        (_range("2025-01-01", "2025-1-2"), "partitions.range.end"),  # not a date
        (_range("2025-01-01", None), "partitions.range.end"),
        (_range("2025-01-01", "2025-01-02", region="eu"), "partitions.range.where.region"),  # not a dim
        ({"explicit": []}, "partitions.explicit"),
        ({"explicit": ["date=d:2025-01-01", "date=d:2026-01-01"]}, "partitions.explicit[1]"),
        ({"explicit": ["date=2025-01-01"]}, "partitions.explicit[0]"),
        ({"explicit": ["date=d:2024-12-31"]}, "partitions.explicit[0]"),
        ({"explicit": ["region=s:ZXU"]}, "partitions.explicit[0]"),
        ({"explicit": [7]}, "partitions.explicit[0]"),
        ({"range": {}, "explicit": []}, "partitions"),
        ({"ranges": {}}, "partitions"),
        ({"range": {"start": "2025-01-01", "end": "2025-01-01", "step": 2}}, "partitions.range.step"),
        (_range("2000-01-01", "2025-01-01"), "partitions.range.start"),
    ],
)
def test_b2_bad_selectors_name_the_field(selector: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        resolve_partitions(selector, [DAILY], now_ms=NOW)
    assert _field(exc) == field


def test_b2_misaligned_bounds_and_unknown_static_values() -> None:
    with pytest.raises(InvalidInput) as exc:
        resolve_partitions(_range("2024-11-15", "2025-01-01"), [MONTHLY], now_ms=NOW)
    assert _field(exc) == "partitions.range.start"
    with pytest.raises(InvalidInput) as exc:
        resolve_partitions(_range("2025-01-01T10:30:00Z", "2025-01-01T11:00:00Z"), [HOURLY], now_ms=NOW)
    assert _field(exc) == "partitions.range.start"
    with pytest.raises(InvalidInput) as exc:
        resolve_partitions(_range("2025-01-01", "2025-01-01", region="mars"), [DAILY, REGION], now_ms=NOW)
    assert _field(exc) == "partitions.range.where.region"
    with pytest.raises(InvalidInput) as exc:
        resolve_partitions({"explicit": [_day("2025-02-29")]}, [DAILY], now_ms=NOW)
    assert _field(exc) == "partitions.explicit[0]"


def test_b2_more_than_ten_thousand_partitions_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        resolve_partitions(_range("2024-01-01T00:00:00Z", "2025-03-01T00:00:00Z"), [HOURLY], now_ms=NOW)
    assert _field(exc) == "partitions.range"


def test_b_explicit_keys_are_sorted_and_deduplicated() -> None:
    keys = [
        _day("2025-01-02", "us"),
        _day("2025-01-01", "us"),
        _day("2025-01-02", "us"),
        _day("2025-01-01", "eu"),
    ]
    assert resolve_partitions({"explicit": keys}, [DAILY, REGION], now_ms=NOW) == (
        _day("2025-01-01", "eu"),
        _day("2025-01-01", "us"),
        _day("2025-01-02", "us"),
    )


def test_b2_assets_unpartitioned_mixed_or_unknown() -> None:
    dims = {"a": [DAILY], "b": [DAILY], "c": [HOURLY], "plain": []}
    assert backfill_dimensions(["a", "b"], dims) == [DAILY]
    for assets in (["a", "c"], ["plain"], ["a", "nope"], []):
        with pytest.raises(InvalidInput) as exc:
            backfill_dimensions(assets, dims)
        assert _field(exc) == "assets"


def test_b_settings_bounds() -> None:
    assert check_backfill_settings(None, None) == (5, 10)
    assert check_backfill_settings(20, None) == (20, 20)
    for size, most, field in (
        (0, None, "chunkSize"),
        (101, None, "chunkSize"),
        (5, 4, "maxConcurrentRuns"),
        (5, 101, "maxConcurrentRuns"),
        (True, None, "chunkSize"),
    ):
        with pytest.raises(InvalidInput) as exc:
            check_backfill_settings(size, most)
        assert _field(exc) == field


def test_period_count_matches_the_enumeration() -> None:
    assert period_count("day", PartitionValue("d", "2024-02-28"), PartitionValue("d", "2024-03-01")) == 3
    assert period_count("month", PartitionValue("d", "2024-11-01"), PartitionValue("d", "2025-02-01")) == 4
    assert period_count("year", PartitionValue("d", "2020-01-01"), PartitionValue("d", "2025-01-01")) == 6
    assert period_count("day", PartitionValue("d", "2025-01-02"), PartitionValue("d", "2025-01-01")) == 0


@given(st.lists(st.integers(1, 300), min_size=1, max_size=80, unique=True), st.integers(1, 100))
def test_chunks_partition_the_keys_exactly_in_order(days: list[int], size: int) -> None:
    keys = [f"k{d:04d}" for d in sorted(days)]
    chunks = chunk_partitions(keys, size)
    assert [k for chunk in chunks for k in chunk] == keys
    assert all(1 <= len(c) <= size for c in chunks)
    assert all(len(c) == size for c in chunks[:-1])


def test_b_explicit_hourly_keys_and_static_only_ranges() -> None:
    hour = "hour=t:2025-01-15T10:00:00.000000Z"
    assert resolve_partitions({"explicit": [hour]}, [HOURLY], now_ms=NOW) == (hour,)
    with pytest.raises(InvalidInput) as exc:
        resolve_partitions({"explicit": ["hour=d:2025-01-15"]}, [HOURLY], now_ms=NOW)
    assert _field(exc) == "partitions.explicit[0]"
    with pytest.raises(InvalidInput) as exc:
        resolve_partitions({"explicit": ["date=t:2025-01-15T00:00:00.000000Z"]}, [DAILY], now_ms=NOW)
    assert _field(exc) == "partitions.explicit[0]"
    regions = resolve_partitions({"range": {"where": {"region": ["us", "ap"]}}}, [REGION], now_ms=NOW)
    assert [PartitionKey.of({"region": PartitionValue("s", r)}).render() for r in ("ap", "us")] == list(
        regions
    )
    with pytest.raises(InvalidInput) as exc:
        resolve_partitions(_range("2025-01-01", "2025-01-01"), [REGION], now_ms=NOW)
    assert _field(exc) == "partitions.range.start"
    with pytest.raises(InvalidInput) as exc:
        resolve_partitions(
            {"range": {"start": "2025-01-01", "end": "2025-01-01", "where": {"region": []}}},
            [DAILY, REGION],
            now_ms=NOW,
        )
    assert _field(exc) == "partitions.range.where.region"
