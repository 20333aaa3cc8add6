"""RFC 3339 UTC timestamps (contracts conventions): writers 0/3/6 fraction digits, readers 0-9."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servo.core.errors import InvalidInput
from servo.core.timefmt import (
    MAX_MS,
    format_timestamp,
    format_timestamp_us,
    parse_timestamp,
    parse_timestamp_us,
)

BASE_S = 1_736_935_205  # 2025-01-15T10:00:05Z
BASE = "2025-01-15T10:00:05"


def test_contract_examples_us() -> None:
    us = BASE_S * 1_000_000
    assert format_timestamp_us(us) == f"{BASE}Z"
    assert format_timestamp_us(us + 123_000) == f"{BASE}.123Z"
    assert format_timestamp_us(us + 123_456) == f"{BASE}.123456Z"
    assert format_timestamp_us(us + 120) == f"{BASE}.000120Z"


def test_format_ms() -> None:
    assert format_timestamp(BASE_S * 1000) == f"{BASE}Z"
    assert format_timestamp(BASE_S * 1000 + 123) == f"{BASE}.123Z"
    assert format_timestamp(BASE_S * 1000 + 1) == f"{BASE}.001Z"
    assert format_timestamp(1469922850259) == "2016-07-30T23:54:10.259Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00Z"


def test_format_rejects_non_int_and_out_of_range() -> None:
    for bad in (1.5, True, "0", -1, MAX_MS + 1):
        with pytest.raises(InvalidInput):
            format_timestamp(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        format_timestamp_us(-1)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        (f"{BASE}Z", BASE_S * 1000),
        (f"{BASE}.1Z", BASE_S * 1000 + 100),
        (f"{BASE}.12Z", BASE_S * 1000 + 120),
        (f"{BASE}.123Z", BASE_S * 1000 + 123),
        (f"{BASE}.123456Z", BASE_S * 1000 + 123),
        (f"{BASE}.000120Z", BASE_S * 1000),
        (f"{BASE}.999999999Z", BASE_S * 1000 + 999),
        ("2016-07-30T23:54:10.259Z", 1469922850259),
        ("2024-02-29T00:00:00Z", 1709164800000),
    ],
)
def test_parse_accepts_0_to_9_digits(text: str, ms: int) -> None:
    assert parse_timestamp(text) == ms


def test_parse_us() -> None:
    assert parse_timestamp_us(f"{BASE}.000120Z") == BASE_S * 1_000_000 + 120
    assert parse_timestamp_us(f"{BASE}.123456789Z") == BASE_S * 1_000_000 + 123456


@pytest.mark.parametrize(
    "bad",
    [
        f"{BASE}",
        f"{BASE}+00:00",
        f"{BASE}.123+00:00",
        f"{BASE}z",
        "2025-01-15t10:00:05Z",
        "2025-01-15 10:00:05Z",
        f"{BASE}.Z",
        f"{BASE}.1234567890Z",
        "2025-02-30T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2025-01-15T24:00:00Z",
        "2025-01-15T10:60:00Z",
        "2025-01-15T10:00:60Z",
        "25-01-15T10:00:05Z",
        "",
        "\u0662025-01-15T10:00:05Z",
        f"{BASE}Z\n",
    ],
)
def test_parse_rejections(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_timestamp(bad)


def test_parse_non_str() -> None:
    with pytest.raises(InvalidInput):
        parse_timestamp(5)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=MAX_MS))
def test_ms_roundtrip(ms: int) -> None:
    text = format_timestamp(ms)
    assert text.endswith("Z")
    assert parse_timestamp(text) == ms


@given(st.integers(min_value=0, max_value=MAX_MS * 1000))
def test_us_roundtrip(us: int) -> None:
    text = format_timestamp_us(us)
    assert parse_timestamp_us(text) == us
    fraction = text[19:-1]
    assert len(fraction) in (0, 4, 7)


def test_formatting_agrees_with_datetime_over_the_whole_range() -> None:
    from datetime import UTC, datetime, timedelta

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for us in (0, 951_782_400_000_000, 4_107_542_399_999_999, 253_402_300_799_999_999, 1_765_000_000_123_000):
        for value in (us, us, us - 1_000_000, us):  # the same second again, and another one between
            if value < 0:
                continue
            expected = (epoch + timedelta(microseconds=value)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            assert parse_timestamp_us(format_timestamp_us(value)) == value
            assert format_timestamp_us(value).rstrip("Z").split(".")[0] == expected.split(".")[0]
