"""Identifier wire formats (contracts §5): every ✔ example plus the parsers' rejections."""

from __future__ import annotations

import itertools
import random
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servo.core.errors import InvalidId, ServoError
from servo.core.ids import (
    TimerIdParts,
    UlidFactory,
    _has_control,
    attempt_id,
    automation_run_id,
    cloud_task_id,
    cron_timer_id,
    dispatch_id,
    is_ulid,
    manifest_id,
    parse_dispatch_id,
    parse_manifest_id,
    parse_timer_id,
    run_key_object_name,
    timer_id,
    ulid_text,
    ulid_time_ms,
    validate_path_component,
    validate_scope_id,
    validate_ulid,
)
from ulid import ULID


def _seeded(seed: int = 7) -> UlidFactory:
    rng = random.Random(seed)
    return UlidFactory(rng.randbytes)


def test_ulid_example_time() -> None:
    assert ulid_time_ms("01ARZ3NDEKTSV4RRFFQ69G5FAV") == 1469922850259
    assert validate_ulid("01ARZ3NDEKTSV4RRFFQ69G5FAV") == "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**80 - 1))
def test_ulid_text_spells_a_ulid_as_the_ulid_library_does(ms: int, randomness: int) -> None:
    """Spelled with base64's C encoder (python-ulid's pure-Python one cost ~20 us an id: every event
    id, every worker's execution and materialization id)."""
    raw = ms.to_bytes(6, "big") + randomness.to_bytes(10, "big")
    assert ulid_text(ms, randomness) == str(ULID.from_bytes(raw))


def test_ulid_text_at_the_edges() -> None:
    for ms, randomness in itertools.product((0, 1, 2**47, 2**48 - 1), (0, 1, 2**79, 2**80 - 1)):
        raw = ms.to_bytes(6, "big") + randomness.to_bytes(10, "big")
        assert ulid_text(ms, randomness) == str(ULID.from_bytes(raw))
        assert ulid_time_ms(ulid_text(ms, randomness)) == ms


def test_ulid_factory_encodes_time_and_randomness() -> None:
    factory = UlidFactory(lambda n: b"\x00" * n)
    first = factory.new(1469922850259)
    assert first == "01ARZ3NDEK0000000000000000"
    assert ulid_time_ms(first) == 1469922850259
    assert factory.new(1469922850259) == "01ARZ3NDEK0000000000000001"


def test_ulid_factory_is_monotonic_within_a_millisecond_and_when_the_clock_steps_back() -> None:
    factory = _seeded()
    ids = [factory.new(1000), factory.new(1000), factory.new(1000), factory.new(999), factory.new(1001)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [ulid_time_ms(i) for i in ids] == [1000, 1000, 1000, 1000, 1001]


def test_ulid_factory_overflow_is_an_error() -> None:
    factory = UlidFactory(lambda n: b"\xff" * n)
    factory.new(5)
    with pytest.raises(ServoError, match="exhausted"):
        factory.new(5)


def test_ulid_factory_rejects_bad_input() -> None:
    with pytest.raises(InvalidId):
        _seeded().new(-1)
    with pytest.raises(InvalidId):
        _seeded().new(2**48)
    with pytest.raises(ServoError):
        UlidFactory(lambda n: b"\x00").new(1)


@given(st.lists(st.integers(min_value=0, max_value=2**48 - 1), min_size=1, max_size=30), st.integers())
def test_ulid_factory_strictly_increasing(times: list[int], seed: int) -> None:
    factory = UlidFactory(random.Random(seed).randbytes)
    ids = [factory.new(t) for t in times]
    assert all(is_ulid(i) for i in ids)
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_ulid_time_ms_reads_every_crockford_digit() -> None:
    # One id per digit position and value, against the ULID library's own decoding.
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    for position in range(10):
        for digit in alphabet[: 8 if position == 0 else 32]:
            ulid = "0" * position + digit + "0" * (25 - position)
            assert ulid_time_ms(ulid) == ULID.from_str(ulid).milliseconds
    assert ulid_time_ms("7ZZZZZZZZZZZZZZZZZZZZZZZZZ") == 2**48 - 1


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "01ARZ3NDEKTSV4RRFFQ69G5FA",
        "01ARZ3NDEKTSV4RRFFQ69G5FAVX",
        "01arz3ndektsv4rrffq69g5fav",
        "01ARZ3NDEKTSV4RRFFQ69G5FAI",
        "01ARZ3NDEKTSV4RRFFQ69G5FAU",
        "81ARZ3NDEKTSV4RRFFQ69G5FAV",
        "01ARZ3NDEKTSV4RRFFQ69G5FA\n",
    ],
)
def test_validate_ulid_rejections(bad: str) -> None:
    assert not is_ulid(bad)
    with pytest.raises(InvalidId):
        validate_ulid(bad)
    with pytest.raises(InvalidId):
        ulid_time_ms(bad)


def test_dispatch_id_roundtrip() -> None:
    did = dispatch_id("run-123", "analytics.daily_sales", 1)
    assert did == "dispatch:run-123:analytics.daily_sales:1"
    assert parse_dispatch_id(did) == ("run-123", "analytics.daily_sales", 1)


@pytest.mark.parametrize(
    "bad",
    [
        "dispatch:run:task",
        "dispatch:run:task:0",
        "dispatch:run:task:01",
        "dispatch:run:task:x",
        "dispatch::task:1",
        "dispatch:run::1",
        "dispatch:run:a:b:1",
        "dispatched:run:task:1",
        "",
    ],
)
def test_parse_dispatch_id_rejections(bad: str) -> None:
    with pytest.raises(InvalidId):
        parse_dispatch_id(bad)


def test_dispatch_id_rejects_bad_parts() -> None:
    for run_id, task_key, attempt in [
        ("r:1", "t", 1),
        ("r", "a:b", 1),
        ("", "t", 1),
        ("r", "t", 0),
        ("r", "t", True),
    ]:
        with pytest.raises(InvalidId):
            dispatch_id(run_id, task_key, attempt)


def test_attempt_id_examples() -> None:
    assert attempt_id("dispatch:run-123:analytics.daily_sales:1") == "att_d73e81338503cf766c5a9d17"
    assert attempt_id("dispatch:run1:extract:1") == "att_af5c419a69061299a227e6a9"


def test_cloud_task_id_examples() -> None:
    assert cloud_task_id("dispatch:run1:extract:1") == "d_cxtoltqhbncw6nevn7hy53kqn6"
    assert cloud_task_id("dispatch:run-123:analytics.daily_sales:1") == "d_qdd6g2ky62mspicbvotk3h6sws"
    assert cloud_task_id("timer:retry:run1:extract:1:1705340400") == "t_hlljqq57362d4n3x2kett7jrqf"
    assert len(cloud_task_id("dispatch:run1:extract:1")) == 28
    with pytest.raises(InvalidId):
        cloud_task_id("run1:extract:1")


def test_timer_ids() -> None:
    tid = timer_id("retry", "run1", "extract", 1, 1705340400)
    assert tid == "timer:retry:run1:extract:1:1705340400"
    assert parse_timer_id(tid) == TimerIdParts("retry", "run1", "extract", 1, 1705340400)
    for kind in ("heartbeat", "sla"):
        assert parse_timer_id(timer_id(kind, "r", "a.b", 3, 0)) == TimerIdParts(kind, "r", "a.b", 3, 0)
    cron = cron_timer_id("daily", 1736935200)
    assert cron == "timer:cron:daily:1736935200"
    assert parse_timer_id(cron) == TimerIdParts("cron", None, None, None, 1736935200, "daily")


@pytest.mark.parametrize(
    "bad",
    [
        "timer:retry:run1:extract:1",
        "timer:other:run1:extract:1:5",
        "timer:retry:run1:extract:0:5",
        "timer:retry:run1:extract:1:-5",
        "timer:retry:run1:extract:1:05",
        "timer:cron:daily",
        "timer:cron::5",
        "timer:cron:daily:x",
        "tmr:retry:run1:extract:1:5",
    ],
)
def test_parse_timer_id_rejections(bad: str) -> None:
    with pytest.raises(InvalidId):
        parse_timer_id(bad)


def test_timer_id_rejects_bad_kind_and_parts() -> None:
    with pytest.raises(InvalidId):
        timer_id("cron", "r", "t", 1, 1)
    with pytest.raises(InvalidId):
        timer_id("retry", "r", "t:x", 1, 1)
    with pytest.raises(InvalidId):
        timer_id("retry", "r", "t", 1, -1)


def test_automation_run_id_examples() -> None:
    key = ("tenant-abc", "workspace-prod", "sched:daily-etl:1736935200")
    assert automation_run_id(b"test-secret", *key) == "run_ba6mduulcrdaksbnw2imp3eiwq"
    assert automation_run_id(b"", *key) == "run_wtvfx6ydvrke4qoyxbrgd2frbm"


def test_run_key_object_name() -> None:
    expected = "run_keys/e8a1600e00f163438872a247a4eadd3373e13896.json"
    assert run_key_object_name("daily-etl:2025-01-15") == expected
    assert run_key_object_name("k" * 256).startswith("run_keys/")
    for bad in ("", "k" * 257, "é" * 129):
        with pytest.raises(InvalidId):
            run_key_object_name(bad)


def test_manifest_id() -> None:
    assert manifest_id(77) == "00000000000000000077"
    assert manifest_id(0) == "0" * 20
    assert parse_manifest_id("00000000000000000077") == 77
    for bad_n in (-1, 10**20, True):
        with pytest.raises(InvalidId):
            manifest_id(bad_n)
    for bad_s in ("77", "0000000000000000007x", "000000000000000000077"):
        with pytest.raises(InvalidId):
            parse_manifest_id(bad_s)


def test_scope_ids() -> None:
    assert validate_scope_id("tenant-abc_1", "tenant") == "tenant-abc_1"
    assert validate_scope_id("a" * 63, "workspace") == "a" * 63
    for bad in ("", "Acme", "a b", "a/b", "a.b", "a" * 64, "..", "é"):
        with pytest.raises(InvalidId, match="tenant"):
            validate_scope_id(bad, "tenant")


def test_path_components() -> None:
    for ok in ("run-1", "raw.events", "attempt-1.log", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "é"):
        assert validate_path_component(ok, "name") == ok
    assert validate_path_component("a" * 10, "name", max_len=10) == "a" * 10
    for bad in (
        "",
        ".",
        "..",
        "a..b",
        "a/b",
        "/a",
        "a\\b",
        "a%2F",
        "a\x00",
        "a\n",
        "a\x7f",
        "a\x85",
        "\ud800",
    ):
        with pytest.raises(InvalidId, match="run_id"):
            validate_path_component(bad, "run_id")
    with pytest.raises(InvalidId, match="at most"):
        validate_path_component("a" * 11, "name", max_len=10)


def test_control_characters_are_exactly_unicode_category_cc() -> None:
    # The id check matches a fixed range instead of asking unicodedata per character: Cc is closed
    # (Unicode's stability policy), so the two must agree on every code point.
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        assert _has_control(f"a{ch}b") == (unicodedata.category(ch) == "Cc"), hex(code)
