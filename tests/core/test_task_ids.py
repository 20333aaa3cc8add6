"""Task keys and the ct1_ callback taskId (contracts §4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servo.core.errors import InvalidPartitionKey, InvalidTaskId
from servo.core.keys import (
    AssetKey,
    b64u_encode,
    decode_task_id,
    encode_task_id,
    planner_task_key,
    validate_task_key,
)


def test_planner_task_keys() -> None:
    raw_events = AssetKey.parse("raw.events")
    assert planner_task_key(raw_events, "date=d:2025-01-01") == "raw/events[date=d:2025-01-01]:materialize"
    assert planner_task_key(AssetKey.parse("staging/cleaned"), None, "check") == "staging/cleaned:check"
    assert planner_task_key(raw_events, "", "backfill") == "raw/events:backfill"
    assert planner_task_key(raw_events, None) == "raw/events:materialize"


def test_planner_task_key_rejects_bad_op_and_pk() -> None:
    with pytest.raises(InvalidTaskId, match="op"):
        planner_task_key(AssetKey.parse("raw.events"), None, "run")
    with pytest.raises(InvalidPartitionKey, match="canonical"):
        planner_task_key(AssetKey.parse("raw.events"), "n=i:007")


def test_validate_task_key() -> None:
    assert validate_task_key("analytics.daily_sales") == "analytics.daily_sales"
    for bad in ["raw/events", "raw:events", "raw.events:1", "raw", "", "Raw.events", "raw.events "]:
        with pytest.raises(InvalidTaskId):
            validate_task_key(bad)


@pytest.mark.parametrize(
    ("run_id", "task_key", "task_id"),
    [
        ("run-123", "analytics.daily_sales", "ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM"),
        (
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "raw.events",
            "ct1_MDFBUlozTkRFS1RTVjRSUkZGUTY5RzVGQVYAcmF3LmV2ZW50cw",
        ),
    ],
)
def test_task_id_examples(run_id: str, task_key: str, task_id: str) -> None:
    assert encode_task_id(run_id, task_key) == task_id
    assert decode_task_id(task_id) == (run_id, task_key)


@pytest.mark.parametrize(
    "bad",
    [
        "cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM",  # no prefix
        "ct2_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM",
        "ct1_",
        "ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM=",  # padded
        "ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXN",  # non-canonical trailing bits
        "ct1_cnVu+TEy",  # standard alphabet
        "ct1_cnVuLTEyMw",  # one part only
        "ct1_" + b64u_encode(b"a\x00b\x00c"),  # three parts
        "ct1_" + b64u_encode(b"\x00b"),  # empty run id
        "ct1_" + b64u_encode(b"a\x00"),  # empty task key
        "ct1_" + b64u_encode(b"\xff\x00b"),  # not UTF-8
        "ct1_" + b64u_encode(b"a\x00\xc3"),
    ],
)
def test_decode_rejections(bad: str) -> None:
    with pytest.raises(InvalidTaskId):
        decode_task_id(bad)


def test_encode_rejections() -> None:
    for run_id, task_key in [("", "a.b"), ("r", ""), ("r\x00", "a.b"), ("r", "a\x00b")]:
        with pytest.raises(InvalidTaskId):
            encode_task_id(run_id, task_key)


_part = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1)


@given(_part, _part)
def test_task_id_roundtrip(run_id: str, task_key: str) -> None:
    task_id = encode_task_id(run_id, task_key)
    assert task_id.startswith("ct1_")
    assert "=" not in task_id
    assert decode_task_id(task_id) == (run_id, task_key)
