"""Cron parsing and the DST rules of automation §6.1, as vectors and properties independent of the library."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core.cron import load_timezone, parse_cron
from servo.core.errors import InvalidInput, InvalidSchedule


def _s(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _z(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%MZ")


def fires(cron: str, zone: str, after: str, until: str, limit: int = 1000) -> list[str]:
    return [_z(t) for t in parse_cron(cron).fire_times(load_timezone(zone), _s(after), _s(until), limit)]


# ------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("cron", "fields"),
    [
        ("@hourly", ("0", "*", "*", "*", "*")),
        ("@daily", ("0", "0", "*", "*", "*")),
        ("@weekly", ("0", "0", "*", "*", "0")),
        ("@monthly", ("0", "0", "1", "*", "*")),
        ("  */15 9-17 * jan,Jul MON-FRI ", ("*/15", "9-17", "*", "jan,Jul", "MON-FRI")),
        ("0 0 29 2 *", ("0", "0", "29", "2", "*")),
        ("5/20 1,2,3 1-31/2 * 7", ("5/20", "1,2,3", "1-31/2", "*", "7")),
    ],
)
def test_valid_crons_keep_their_five_fields(cron: str, fields: tuple[str, ...]) -> None:
    assert parse_cron(cron).fields == fields


@pytest.mark.parametrize(
    ("cron", "canonical"),
    [
        (" 0\t1  * * * ", "0 1 * * *"),
        ("@DAILY", "@daily"),
        (" @hourly", "@hourly"),
        ("0 1 * * MON", "0 1 * * MON"),
    ],
)
def test_the_expression_is_kept_in_one_spelling(cron: str, canonical: str) -> None:
    assert parse_cron(cron).expression == canonical


@pytest.mark.parametrize(
    ("cron", "cron_field", "words"),
    [
        ("60 * * * *", "minute", "bad minute field '60'"),
        ("* 24 * * *", "hour", "bad hour field '24'"),
        ("* * 0 * *", "day-of-month", "bad day-of-month"),
        ("* * * 13 *", "month", "bad month"),
        ("* * * * 8", "day-of-week", "bad day-of-week"),
        ("* * * * MON#2", "day-of-week", "bad day-of-week"),
        ("* * L * *", "day-of-month", "bad day-of-month"),
        ("* * * MON *", "month", "bad month"),
        ("* * * * JAN", "day-of-week", "bad day-of-week"),
        ("30-10 * * * *", "minute", "bad minute"),
        ("*/0 * * * *", "minute", "bad minute"),
        ("0 0 30 2 *", "day-of-month", "never fire"),
        ("0 0 31 4,6,9,11 *", "day-of-month", "never fire"),
    ],
)
def test_s3_bad_fields_name_the_field(cron: str, cron_field: str, words: str) -> None:
    with pytest.raises(InvalidSchedule) as err:
        parse_cron(cron)
    assert err.value.details["field"] == "cron"
    assert err.value.details["cronField"] == cron_field
    assert words in err.value.message
    assert isinstance(err.value, InvalidInput)


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 * * * * *", "has 6 fields"),
        ("* * * *", "has 4 fields"),
        ("", "non-empty"),
        ("@yearly", "unknown macro"),
        (None, "non-empty string"),
    ],
)
def test_s3_wrong_shapes_are_refused(cron: object, words: str) -> None:
    with pytest.raises(InvalidSchedule, match=words):
        parse_cron(cron)


def test_the_two_restricted_day_fields_are_ored_as_cron_does() -> None:
    # 2025-06: the 13th is a Friday; Mondays are 2, 9, 16, 23, 30.
    days = fires("0 12 13 * MON", "UTC", "2025-06-01T00:00Z", "2025-07-01T00:00Z")
    assert [d[8:10] for d in days] == ["02", "09", "13", "16", "23", "30"]
    # A `*` in either day field makes the other one alone decide.
    assert len(fires("0 12 * * MON", "UTC", "2025-06-01T00:00Z", "2025-07-01T00:00Z")) == 5


def test_seven_and_zero_are_sunday() -> None:
    sundays = fires("0 0 * * 0", "UTC", "2025-06-01T00:00Z", "2025-06-30T00:00Z")
    assert fires("0 0 * * 7", "UTC", "2025-06-01T00:00Z", "2025-06-30T00:00Z") == sundays
    assert fires("0 0 * * sun", "UTC", "2025-06-01T00:00Z", "2025-06-30T00:00Z") == sundays
    assert sundays == ["2025-06-08T00:00Z", "2025-06-15T00:00Z", "2025-06-22T00:00Z", "2025-06-29T00:00Z"]


@pytest.mark.parametrize("zone", ["Not/AZone", "", "../etc/passwd", "america/new york", 5])
def test_s3_unknown_timezones_are_refused(zone: object) -> None:
    with pytest.raises(InvalidSchedule, match="timezone") as err:
        load_timezone(zone)
    assert err.value.details["field"] == "timezone"


# --------------------------------------------------------------------------------------- DST vectors
# S11 and S15 themselves are in test_schedules.py, through due_ticks.


@pytest.mark.parametrize("hours", ["*/1", "0-23", "0-11,12-23"])
def test_an_hour_field_covering_every_hour_counts_as_star(hours: str) -> None:
    assert fires(f"0 {hours} * * *", "America/New_York", "2025-11-02T04:30Z", "2025-11-02T07:30Z") == [
        "2025-11-02T05:00Z",
        "2025-11-02T06:00Z",
        "2025-11-02T07:00Z",
    ]


def test_a_restricted_hour_field_fires_the_repeated_hour_once() -> None:
    assert fires("0,30 1-2 * * *", "America/New_York", "2025-11-02T04:30Z", "2025-11-02T07:30Z") == [
        "2025-11-02T05:00Z",
        "2025-11-02T05:30Z",
        "2025-11-02T07:00Z",
        "2025-11-02T07:30Z",
    ]


def test_every_quarter_hour_in_the_gap_collapses_to_one_instant() -> None:
    # 02:00-02:45 do not exist; each fires at 03:00 EDT, which is also 03:00's own instant: one tick.
    assert fires("*/15 * * * *", "America/New_York", "2025-03-09T06:40Z", "2025-03-09T07:20Z") == [
        "2025-03-09T06:45Z",
        "2025-03-09T07:00Z",
        "2025-03-09T07:15Z",
    ]


def test_london_fall_back_half_hourly_runs_both_copies_in_utc_order() -> None:
    # 2025-10-26 02:00 BST -> 01:00 GMT; 01:00 and 01:30 local happen twice.
    assert fires("*/30 * * * *", "Europe/London", "2025-10-25T23:45Z", "2025-10-26T02:00Z") == [
        "2025-10-26T00:00Z",
        "2025-10-26T00:30Z",
        "2025-10-26T01:00Z",
        "2025-10-26T01:30Z",
        "2025-10-26T02:00Z",
    ]


def test_london_spring_forward_daily_0130_fires_at_0200_bst() -> None:
    # 2025-03-30 01:00 GMT -> 02:00 BST: 01:30 does not exist, the first valid time is 01:00Z.
    assert fires("30 1 * * *", "Europe/London", "2025-03-29T12:00Z", "2025-03-31T12:00Z") == [
        "2025-03-30T01:00Z",
        "2025-03-31T00:30Z",
    ]


def test_lord_howe_half_hour_fall_back_and_spring_forward() -> None:
    # Lord Howe moves by 30 minutes: +11 -> +10:30 on 2025-04-06 02:00 local (15:00Z on 04-05),
    # +10:30 -> +11 on 2025-10-05 02:00 local (15:30Z on 10-04).
    assert fires("45 1 * * *", "Australia/Lord_Howe", "2025-04-05T12:00Z", "2025-04-06T12:00Z") == [
        "2025-04-05T14:45Z"
    ]
    # 01:30-02:00 happens twice; with `*` hours, 01:45 fires at +11 and again at +10:30.
    assert fires("45 * * * *", "Australia/Lord_Howe", "2025-04-05T13:00Z", "2025-04-05T16:00Z") == [
        "2025-04-05T13:45Z",
        "2025-04-05T14:45Z",
        "2025-04-05T15:15Z",
    ]
    assert fires("15 2 * * *", "Australia/Lord_Howe", "2025-10-04T12:00Z", "2025-10-05T12:00Z") == [
        "2025-10-04T15:30Z"
    ]


def test_utc_has_no_surprises() -> None:
    assert fires("0 0 1 * *", "UTC", "2024-12-31T00:00Z", "2025-04-01T00:00Z") == [
        "2025-01-01T00:00Z",
        "2025-02-01T00:00Z",
        "2025-03-01T00:00Z",
        "2025-04-01T00:00Z",
    ]


def test_next_fire_finds_a_rare_cron() -> None:
    cron = parse_cron("0 0 29 2 *")
    assert _z(cron.next_fire_after(load_timezone("UTC"), _s("2025-03-01T00:00Z")) or 0) == "2028-02-29T00:00Z"


# ------------------------------------------------------------------------------------------ properties

_ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Apia"]
_CRONS = ["* * * * *", "*/7 * * * *", "@hourly", "30 1 * * *", "30 2 * * *", "0 0 * * MON", "15 */3 * * *"]


@settings(max_examples=80, deadline=None)
@given(
    cron=st.sampled_from(_CRONS),
    zone=st.sampled_from(_ZONES),
    start=st.integers(_s("2010-01-01T00:00Z"), _s("2030-01-01T00:00Z")),
    span=st.integers(1, 3 * 86_400),
    limit=st.integers(1, 50),
)
def test_fire_times_are_increasing_inside_the_window_and_bounded(
    cron: str, zone: str, start: int, span: int, limit: int
) -> None:
    got = parse_cron(cron).fire_times(load_timezone(zone), start, start + span, limit)
    assert got == sorted(set(got))
    assert all(start < t <= start + span for t in got)
    assert len(got) <= limit
    assert all(t % 60 == 0 for t in got)


@settings(max_examples=30, deadline=None)
@given(
    cron=st.sampled_from(_CRONS),
    zone=st.sampled_from(_ZONES),
    start=st.integers(_s("2010-01-01T00:00Z"), _s("2030-01-01T00:00Z")),
    cut=st.integers(1, 43_200),
)
def test_splitting_a_window_changes_nothing(cron: str, zone: str, start: int, cut: int) -> None:
    expr, tz = parse_cron(cron), load_timezone(zone)
    whole = expr.fire_times(tz, start, start + 86_400, 10_000)
    assert (
        expr.fire_times(tz, start, start + cut, 10_000)
        + expr.fire_times(tz, start + cut, start + 86_400, 10_000)
        == whole
    )
    assert expr.fire_times(tz, start, start + 86_400, 3) == whole[:3]


@settings(max_examples=40, deadline=None)
@given(
    # Pacific/Apia left out: it skipped 2011-12-30, whose 01:30 fires at the first instant of the 31st.
    zone=st.sampled_from(_ZONES[:-1]),
    start=st.integers(_s("2010-01-01T00:00Z"), _s("2030-01-01T00:00Z")),
)
def test_a_daily_cron_fires_once_per_local_day(zone: str, start: int) -> None:
    tz = load_timezone(zone)
    got = parse_cron("30 1 * * *").fire_times(tz, start, start + 20 * 86_400, 10_000)
    local_days = [datetime.fromtimestamp(t, tz).date() for t in got]
    assert len(local_days) == len(set(local_days))
    assert 19 <= len(got) <= 21


# ------------------------------------------------------------------------------------- brute-force oracle


def _offset(zone: ZoneInfo, epoch_s: int) -> int:
    return int(datetime.fromtimestamp(epoch_s, zone).utcoffset().total_seconds())  # type: ignore[union-attr]


def _transitions(zone_name: str) -> list[int]:
    """Offset changes of 2024-2026, found day by day (none of these zones changes twice a day), bisected."""
    zone = load_timezone(zone_name)
    found = []
    for day in range(_s("2024-01-01T00:00Z"), _s("2027-01-01T00:00Z"), 86_400):
        if _offset(zone, day) != _offset(zone, day + 86_400):
            lo, hi = day, day + 86_400
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if _offset(zone, mid) != _offset(zone, day) else (mid, hi)
            found.append(hi)
    return found


_DST_ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "America/Santiago"]
_TRANSITIONS = [(zone, t) for zone in _DST_ZONES for t in _transitions(zone)]


def _wall_matches(fields: str, wall: datetime) -> bool:
    return next(CronSim(fields, wall - timedelta(seconds=1))) == wall


def _oracle(cron: str, zone: ZoneInfo, after: int, until: int) -> list[int]:
    """Every UTC minute of the window decided by §6.1 directly: its own wall time, or a gap it closes."""
    parsed = parse_cron(cron)
    fields, every_hour = " ".join(parsed.fields), parsed.every_hour
    fired = []
    for t in range((after // 60 + 1) * 60, until + 1, 60):
        local = datetime.fromtimestamp(t, zone)
        wall = local.replace(tzinfo=None)
        own = _wall_matches(fields, wall) and (every_hour or local.fold == 0)
        before, after_off = _offset(zone, t - 60), _offset(zone, t)
        gap_walls = range(t - 60 + before + 60, t + after_off, 60) if after_off > before else range(0)
        closes_gap = any(
            _wall_matches(fields, datetime(1970, 1, 1) + timedelta(seconds=w)) for w in gap_walls
        )
        if own or closes_gap:
            fired.append(t)
    return fired


@settings(max_examples=30, deadline=None)
@given(
    transition=st.sampled_from(_TRANSITIONS),
    cron=st.sampled_from(
        ["*/20 * * * *", "@hourly", "30 1 * * *", "15 2 * * *", "0 0-2 * * *", "45 * * * *"]
    ),
    lead=st.integers(0, 4 * 3600),
)
def test_fire_times_agree_with_a_minute_by_minute_oracle_around_transitions(
    transition: tuple[str, int], cron: str, lead: int
) -> None:
    zone_name, instant = transition
    zone = load_timezone(zone_name)
    after = instant - lead
    until = after + 4 * 3600
    assert parse_cron(cron).fire_times(zone, after, until, 10_000) == _oracle(cron, zone, after, until)
