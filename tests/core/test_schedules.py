"""Schedule definitions, due ticks, tick ids and tick partitions (automation §3, §5, §6.1, §7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core.errors import InvalidInput, InvalidSchedule
from servo.core.fingerprints import request_fingerprint
from servo.core.schedules import (
    ScheduleSpec,
    decide_tick,
    due_ticks,
    next_tick_after,
    parse_schedule,
    parse_tick_id,
    schedule_run_key,
    tick_id,
    tick_request_id,
)

DAILY = {"name": "date", "kind": "time", "granularity": "day", "start": "2025-01-01"}
HOURLY = {"name": "hour", "kind": "time", "granularity": "hour"}
MONTHLY = {"name": "month", "kind": "time", "granularity": "month", "start": "2024-01-01"}
REGION = {"name": "region", "kind": "static", "values": ["eu", "us"]}


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _s(text: str) -> int:
    return _ms(text) // 1000


def _z(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spec(**fields: Any) -> ScheduleSpec:
    return parse_schedule({"id": "nightly", "cron": "* * * * *", "target": ["sales.orders"], **fields})


def due(
    s: ScheduleSpec, now: str, last: str | None = None, first_seen: str = "2020-01-01T00:00Z"
) -> list[str]:
    return [
        _z(t)
        for t in due_ticks(
            s,
            last_scheduled_for_ms=_ms(last) if last else None,
            first_seen_at_ms=_ms(first_seen),
            now_ms=_ms(now),
        )
    ]


# ------------------------------------------------------------------------------------------- due ticks


def test_s6_one_due_minutely_tick_and_its_request() -> None:
    s = spec()
    assert due(s, now="2025-01-15T00:01:30Z", last="2025-01-15T00:00:00Z") == ["2025-01-15T00:01:00Z"]
    epoch = _s("2025-01-15T00:01:00Z")
    decision = decide_tick(s, [], epoch, enabled=True)
    assert decision.status == "TRIGGERED"
    assert decision.tick_id == f"nightly:{epoch}"
    assert decision.scheduled_for == "2025-01-15T00:01:00Z"
    request = decision.run_request
    assert request is not None
    assert request.run_key == f"sched:nightly:{epoch}"
    assert request.request_id == f"tick:nightly:{epoch}"
    assert request.selection == ("sales.orders",)
    assert request.partition_key is None
    assert dict(request.source) == {"type": "schedule", "id": "nightly", "ref": f"nightly:{epoch}"}
    assert request.request_fingerprint == request_fingerprint(["sales.orders"], False, False, None, {})


def test_s7_catch_up_is_oldest_first_within_the_window_and_capped() -> None:
    s = spec(cron="*/10 * * * *", catchupWindowMinutes=60, maxCatchupTicks=2)
    assert due(s, now="2025-01-15T12:05:00Z", last="2025-01-15T10:00:00Z") == [
        "2025-01-15T11:10:00Z",
        "2025-01-15T11:20:00Z",
    ]
    # The next sweep takes the rest that are still inside the window.
    assert due(s, now="2025-01-15T12:06:00Z", last="2025-01-15T11:20:00Z") == [
        "2025-01-15T11:30:00Z",
        "2025-01-15T11:40:00Z",
    ]


def test_s8_a_48_hour_outage_catches_up_only_the_window() -> None:
    s = spec(cron="*/10 * * * *", catchupWindowMinutes=60, maxCatchupTicks=1000)
    got = due(s, now="2025-01-17T12:00:00Z", last="2025-01-15T12:00:00Z")
    assert got[0] >= "2025-01-17T11:00:00Z"
    assert got == [f"2025-01-17T{h}:{m}:00Z" for h, m in [("11", "10"), ("11", "20"), ("11", "30")]] + [
        "2025-01-17T11:40:00Z",
        "2025-01-17T11:50:00Z",
        "2025-01-17T12:00:00Z",
    ]


def test_a_new_schedule_does_not_fire_for_times_before_it_was_first_seen() -> None:
    s = spec(cron="*/10 * * * *")
    assert due(s, now="2025-01-15T12:05:00Z", first_seen="2025-01-15T11:55:00Z") == ["2025-01-15T12:00:00Z"]
    assert due(s, now="2025-01-15T12:05:00Z", first_seen="2025-01-15T12:00:00Z") == []


def test_s9_disabled_ticks_are_skipped_paused_without_a_request() -> None:
    decision = decide_tick(spec(), [], _s("2025-01-15T00:01:00Z"), enabled=False)
    assert (decision.status, decision.reason, decision.run_request) == ("SKIPPED", "paused", None)


def test_s11_new_york_fall_back_hourly() -> None:
    s = spec(cron="@hourly", timezone="America/New_York", maxCatchupTicks=10, catchupWindowMinutes=240)
    assert due(s, now="2025-11-02T07:30:00Z", last="2025-11-02T04:30:00Z") == [
        "2025-11-02T05:00:00Z",
        "2025-11-02T06:00:00Z",
        "2025-11-02T07:00:00Z",
    ]


def test_s11_new_york_fall_back_daily_0130_once() -> None:
    s = spec(cron="30 1 * * *", timezone="America/New_York", catchupWindowMinutes=10_080)
    assert due(s, now="2025-11-03T00:00:00Z", last="2025-11-01T12:00:00Z") == ["2025-11-02T05:30:00Z"]


def test_s15_new_york_spring_forward_hourly() -> None:
    s = spec(cron="0 * * * *", timezone="America/New_York", maxCatchupTicks=10, catchupWindowMinutes=240)
    assert due(s, now="2025-03-09T08:30:00Z", last="2025-03-09T05:30:00Z") == [
        "2025-03-09T06:00:00Z",
        "2025-03-09T07:00:00Z",
        "2025-03-09T08:00:00Z",
    ]


def test_s15_new_york_spring_forward_daily_0230_once_after_the_gap() -> None:
    s = spec(cron="30 2 * * *", timezone="America/New_York", catchupWindowMinutes=10_080)
    assert due(s, now="2025-03-10T00:00:00Z", last="2025-03-08T12:00:00Z") == ["2025-03-09T07:00:00Z"]


@settings(max_examples=80, deadline=None)
@given(
    cron=st.sampled_from(["* * * * *", "*/5 * * * *", "@hourly", "30 2 * * *", "0 */2 * * *"]),
    zone=st.sampled_from(["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe"]),
    window=st.integers(1, 10_080),
    max_ticks=st.integers(1, 1000),
    now=st.integers(_ms("2015-01-01T00:00Z"), _ms("2035-01-01T00:00Z")),
    since_last=st.one_of(st.none(), st.integers(0, 20 * 86_400_000)),
    since_seen=st.integers(0, 20 * 86_400_000),
)
def test_due_ticks_are_increasing_within_the_window_capped_and_deterministic(
    cron: str, zone: str, window: int, max_ticks: int, now: int, since_last: int | None, since_seen: int
) -> None:
    s = spec(cron=cron, timezone=zone, catchupWindowMinutes=window, maxCatchupTicks=max_ticks)
    last = None if since_last is None else now - since_last
    args = {"last_scheduled_for_ms": last, "first_seen_at_ms": now - since_seen, "now_ms": now}
    got = due_ticks(s, **args)
    floor = max(now - window * 60_000, now - since_seen, last if last is not None else 0)
    assert got == sorted(set(got))
    assert len(got) <= max_ticks
    assert all(floor < t * 1000 <= now for t in got)
    assert due_ticks(s, **args) == got
    assert {tick_id("nightly", t) for t in got} == {f"nightly:{t}" for t in got}


@settings(max_examples=40, deadline=None)
@given(
    now=st.integers(_ms("2015-01-01T00:00Z"), _ms("2035-01-01T00:00Z")),
    max_ticks=st.integers(1, 4),
)
def test_sweeps_advancing_last_scheduled_for_never_repeat_or_skip_a_tick(now: int, max_ticks: int) -> None:
    # Repeated sweeps at one "now" that advance last_scheduled_for take every tick in the window once.
    s = spec(cron="*/5 * * * *", timezone="America/New_York", maxCatchupTicks=max_ticks)
    everything = due_ticks(
        spec(cron="*/5 * * * *", timezone="America/New_York", maxCatchupTicks=1000),
        last_scheduled_for_ms=None,
        first_seen_at_ms=0,
        now_ms=now,
    )
    taken: list[int] = []
    last: int | None = None
    while batch := due_ticks(s, last_scheduled_for_ms=last, first_seen_at_ms=0, now_ms=now):
        taken += batch
        last = batch[-1] * 1000
    assert taken == everything


# ------------------------------------------------------------------------------------------- ids


def test_tick_ids_and_keys_are_built_from_the_schedule_and_epoch() -> None:
    assert tick_id("nightly", 1_736_899_200) == "nightly:1736899200"
    assert schedule_run_key("nightly", 1_736_899_200) == "sched:nightly:1736899200"
    assert tick_request_id("nightly", 1_736_899_200) == "tick:nightly:1736899200"
    with pytest.raises(InvalidInput):
        tick_id("nightly", -1)
    with pytest.raises(InvalidSchedule):
        tick_id("Nightly", 1)


@given(schedule_id=st.from_regex(r"[a-z][a-z0-9_]{0,63}", fullmatch=True), epoch=st.integers(0, 2**40))
def test_tick_ids_parse_back(schedule_id: str, epoch: int) -> None:
    assert parse_tick_id(tick_id(schedule_id, epoch)) == (schedule_id, epoch)


@pytest.mark.parametrize(
    "text", ["nightly", "nightly:", "nightly:01", "Nightly:1", "nightly:-1", "a:1:2", ":1", 7]
)
def test_bad_tick_ids_are_refused(text: object) -> None:
    with pytest.raises(InvalidInput, match="invalid tick id"):
        parse_tick_id(text)


def test_next_tick_after_is_the_next_instant_in_the_zone() -> None:
    s = spec(cron="30 2 * * *", timezone="America/New_York")
    assert _z(next_tick_after(s, _ms("2025-03-08T12:00:00Z")) or 0) == "2025-03-09T07:00:00Z"
    assert _z(next_tick_after(s, _ms("2025-03-09T07:00:00Z")) or 0) == "2025-03-10T06:30:00Z"


# ------------------------------------------------------------------------------------------- partitions


def test_s16_daily_previous_partition_of_a_tick() -> None:
    s = spec(cron="0 1 * * *", partition="previous")
    decision = decide_tick(s, [DAILY], _s("2025-01-16T01:00:00Z"), enabled=True)
    assert decision.run_request is not None
    assert decision.run_request.partition_key == "date=d:2025-01-15"


@pytest.mark.parametrize(
    ("rule", "dims", "tick", "key"),
    [
        ("current", [DAILY], "2025-01-16T01:00:00Z", "date=d:2025-01-16"),
        ("previous", [HOURLY], "2025-01-16T00:30:00Z", "hour=t:2025-01-15T23:00:00.000000Z"),
        ("current", [HOURLY], "2025-01-16T00:30:00Z", "hour=t:2025-01-16T00:00:00.000000Z"),
        ("previous", [MONTHLY], "2025-01-01T00:00:00Z", "month=d:2024-12-01"),
        ("current", [MONTHLY], "2025-03-31T23:59:00Z", "month=d:2025-03-01"),
        (
            {"date": "previous", "region": "eu"},
            [DAILY, REGION],
            "2025-03-01T00:00:00Z",
            "date=d:2025-02-28,region=s:ZXU",
        ),
        (
            {"date": "2025-02-01", "region": "us"},
            [REGION, DAILY],
            "2025-06-01T00:00:00Z",
            "date=d:2025-02-01,region=s:dXM",
        ),
        ({"month": "2024-06"}, [MONTHLY], "2025-06-01T00:00:00Z", "month=d:2024-06-01"),
        (
            {"hour": "2025-01-01T05:00:00Z"},
            [HOURLY],
            "2025-06-01T00:00:00Z",
            "hour=t:2025-01-01T05:00:00.000000Z",
        ),
    ],
)
def test_tick_partitions_follow_the_rule(rule: Any, dims: list[dict[str, Any]], tick: str, key: str) -> None:
    s = spec(partition=rule)
    s.check_targets({"sales.orders": dims})
    decision = decide_tick(s, dims, _s(tick), enabled=True)
    assert decision.run_request is not None
    assert decision.run_request.partition_key == key


@settings(max_examples=100, deadline=None)
@given(
    tick=st.integers(_s("2025-01-01T00:00Z"), _s("2035-01-01T00:00Z")),
    granularity=st.sampled_from(["hour", "day", "month", "year"]),
    word=st.sampled_from(["previous", "current"]),
)
def test_window_words_name_the_utc_window_before_or_containing_the_tick(
    tick: int, granularity: str, word: str
) -> None:
    dim = {"name": "p", "kind": "time", "granularity": granularity}
    request = decide_tick(spec(partition=word), [dim], tick, enabled=True).run_request
    assert request is not None and request.partition_key is not None
    value = request.partition_key.split(":", 1)[1]  # p=d:2025-01-15 or p=t:2025-01-15T23:00:00.000000Z
    window_start = datetime.fromisoformat(value.replace(".000000Z", "")).replace(tzinfo=UTC)
    containing = _containing(granularity, datetime.fromtimestamp(tick, UTC))
    assert window_start == (containing if word == "current" else _containing(granularity, containing - _TINY))


_TINY = timedelta(microseconds=1)


def _containing(granularity: str, moment: datetime) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    return {"hour": hour, "day": day, "month": day.replace(day=1), "year": day.replace(month=1, day=1)}[
        granularity
    ]


def test_s10_a_tick_before_the_dimension_start_fails_with_a_reason() -> None:
    s = spec(cron="0 1 * * *", partition="previous")
    decision = decide_tick(s, [DAILY], _s("2025-01-01T01:00:00Z"), enabled=True)
    assert decision.status == "FAILED"
    assert decision.run_request is None
    assert decision.reason is not None
    assert "2024-12-31" in decision.reason and "before the first partition 2025-01-01" in decision.reason


@pytest.mark.parametrize(
    ("rule", "dims", "words"),
    [
        (None, [DAILY], "give a partition rule"),
        ("previous", [], "not partitioned"),
        ("previous", [REGION], "exactly one time dimension"),
        ("previous", [DAILY, REGION], "exactly one time dimension"),
        ({"date": "previous"}, [DAILY, REGION], "the targets have date, region"),
        ({"date": "previous", "region": "previous"}, [DAILY, REGION], "is static"),
        ({"date": "previous", "region": "asia"}, [DAILY, REGION], "not one of"),
        ({"date": "2024-12-31"}, [DAILY], "before the first partition"),
        ({"date": "2025-02-30"}, [DAILY], "not a real date"),
        ({"month": "2025-02-03"}, [MONTHLY], "not the start of a month"),
        ({"hour": "2025-01-01T05:30:00Z"}, [HOURLY], "not on the hour"),
        ({"hour": "yesterday"}, [HOURLY], "invalid timestamp"),
    ],
)
def test_s3_bad_partition_rules_are_refused_at_deploy(
    rule: Any, dims: list[dict[str, Any]], words: str
) -> None:
    with pytest.raises(InvalidSchedule, match=words) as err:
        spec(partition=rule).check_targets({"sales.orders": dims})
    assert err.value.details["field"] == "partition"


def test_targets_must_exist_and_share_one_dimension_set() -> None:
    s = spec(target=["sales.orders", "sales.refunds"], partition="previous")
    with pytest.raises(InvalidSchedule, match=r"unknown asset\(s\) sales.refunds"):
        s.check_targets({"sales.orders": [DAILY]})
    with pytest.raises(InvalidSchedule, match="partitioned differently"):
        s.check_targets({"sales.orders": [DAILY], "sales.refunds": [HOURLY]})
    s.check_targets({"sales.orders": [DAILY], "sales.refunds": [dict(reversed(DAILY.items()))]})


# ------------------------------------------------------------------------------------------- definitions


def test_s1_the_manifest_form_and_its_hash_change_only_with_the_definition() -> None:
    s = spec(labels={"team": "sales"}, partition={"date": "previous"})
    assert s.to_manifest() == {
        "id": "nightly",
        "cron": "* * * * *",
        "timezone": "UTC",
        "target": ["sales.orders"],
        "partition": {"date": "previous"},
        "labels": {"team": "sales"},
        "catchupWindowMinutes": 60,
        "maxCatchupTicks": 5,
        "defaultEnabled": False,
    }
    assert parse_schedule(s.to_manifest()) == s
    assert parse_schedule(s.to_manifest()).definition_hash == s.definition_hash
    assert s.definition_hash.startswith("sha256:") and len(s.definition_hash) == 71
    changed = spec(labels={"team": "sales"}, partition={"date": "previous"}, cron="0 * * * *")
    assert changed.definition_hash != s.definition_hash
    # Target order and key spelling do not make a new definition.
    assert spec(target=["b.x", "a/y"]).definition_hash == spec(target=["a.y", "b.x", "a.y"]).definition_hash


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"target": []}, "target"),
        ({"target": "sales.orders"}, "target"),
        ({"target": ["Sales"]}, "target"),
        ({"cron": "0 * * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"timezone": "Not/AZone"}, "timezone"),
        ({"id": "Nightly"}, "id"),
        ({"id": "a" * 65}, "id"),
        ({"id": "9am"}, "id"),
        ({"catchupWindowMinutes": 0}, "catchupWindowMinutes"),
        ({"catchupWindowMinutes": 10_081}, "catchupWindowMinutes"),
        ({"maxCatchupTicks": 1001}, "maxCatchupTicks"),
        ({"maxCatchupTicks": True}, "maxCatchupTicks"),
        ({"labels": {"servo.kind": "x"}}, "labels"),
        ({"labels": {"team": 1}}, "labels"),
        ({"partition": "yesterday"}, "partition"),
        ({"partition": {"Date": "previous"}}, "partition"),
        ({"defaultEnabled": "yes"}, "defaultEnabled"),
        ({"schedule": "x"}, "schedule"),
    ],
)
def test_s3_bad_definitions_name_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSchedule) as err:
        spec(**fields)
    assert err.value.details["field"] == field
    assert err.value.http_status == 400
    assert field in err.value.message
