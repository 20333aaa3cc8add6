"""PartitionKey (contracts §3): golden cases, proto forms, worked examples and every rejection."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servo.core.errors import InvalidPartitionKey
from servo.core.keys import (
    PartitionKey,
    PartitionValue,
    parse_partition_key,
    parse_partition_key_proto,
    partition_id,
    require_canonical_partition_key,
)
from servo.core.partition_keys import partition_values

from tests.conftest import load_fixture

CASES = load_fixture("partition_key_cases.json")


def test_fixture_holds_nineteen_cases() -> None:
    assert len(CASES) == 19


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case(case: dict[str, Any]) -> None:
    key = PartitionKey.from_dimensions(case["dimensions"])
    assert key.render() == case["expected_canonical"]
    parsed = parse_partition_key(case["expected_canonical"])
    assert parsed == key
    assert require_canonical_partition_key(case["expected_canonical"]) == case["expected_canonical"]
    for ch in "/\\?#%":
        assert ch not in case["expected_canonical"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case_tuple_form(case: dict[str, Any]) -> None:
    dims = {k: (v["type"], v["value"]) for k, v in case["dimensions"].items()}
    assert PartitionKey.from_dimensions(dims).render() == case["expected_canonical"]


def test_decoded_values() -> None:
    key = parse_partition_key(
        "active=b:true,count=i:42,date=d:2025-01-15,empty=n:null,name=s:dGVzdA,ts=t:2025-01-15T10:30:00.000000Z"
    )
    assert key.get("active") == PartitionValue("b", True)
    assert key.get("count") == PartitionValue("i", 42)
    assert key.get("date") == PartitionValue("d", "2025-01-15")
    assert key.get("empty") == PartitionValue("n", None)
    assert key.get("name") == PartitionValue("s", "test")
    assert key.get("ts") == PartitionValue("t", "2025-01-15T10:30:00.000000Z")
    assert key.get("nope") is None


def test_worked_examples() -> None:
    key = PartitionKey.of(
        {"region": PartitionValue("s", "us-east"), "date": PartitionValue("d", "2025-01-15")}
    )
    assert key.render() == "date=d:2025-01-15,region=s:dXMtZWFzdA"
    six = PartitionKey.of(
        {
            "ts": PartitionValue("t", "2025-01-15T10:30:00.000000Z"),
            "name": PartitionValue("s", "test"),
            "empty": PartitionValue("n", None),
            "date": PartitionValue("d", "2025-01-15"),
            "count": PartitionValue("i", 42),
            "active": PartitionValue("b", True),
        }
    )
    assert six.render() == (
        "active=b:true,count=i:42,date=d:2025-01-15,empty=n:null,name=s:dGVzdA,ts=t:2025-01-15T10:30:00.000000Z"
    )
    assert PartitionValue("s", "🎉").render() == "s:8J-OiQ"


def test_empty_is_unpartitioned() -> None:
    key = parse_partition_key("")
    assert key.is_unpartitioned
    assert key.render() == ""
    assert require_canonical_partition_key("") == ""


def test_partition_id() -> None:
    got = partition_id("00000000-0000-0000-0000-000000000001", "date=d:2025-01-15")
    assert got == "part_05b799d53b74111a36313fc47239d904"


def test_unsorted_input_parses_but_is_not_canonical() -> None:
    assert parse_partition_key("region=s:dXMtZWFzdA,date=d:2025-01-15").render() == (
        "date=d:2025-01-15,region=s:dXMtZWFzdA"
    )
    with pytest.raises(InvalidPartitionKey) as err:
        require_canonical_partition_key("region=s:dXMtZWFzdA,date=d:2025-01-15")
    assert (
        err.value.message
        == "partitionKey must be canonical: expected 'date=d:2025-01-15,region=s:dXMtZWFzdA'"
    )


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("n=i:007", "n=i:7"), ("n=i:+5", "n=i:5"), ("n=i:-0", "n=i:0"), ("n=i:-007", "n=i:-7")],
)
def test_non_canonical_integers_parse_like_rust_but_fail_the_api_check(raw: str, canonical: str) -> None:
    assert parse_partition_key(raw).render() == canonical
    with pytest.raises(InvalidPartitionKey) as err:
        require_canonical_partition_key(raw)
    assert err.value.message == f"partitionKey must be canonical: expected '{canonical}'"
    assert err.value.details["expected"] == canonical


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("date", "missing '='"),
        ("date=d:2025-01-15,", "missing '='"),
        (",date=d:2025-01-15", "missing '='"),
        ("Date=d:2025-01-15", "must match"),
        ("1date=d:2025-01-15", "must match"),
        ("=d:2025-01-15", "must match"),
        ("date=2025-01-15", "no type tag"),
        ("date=x:2025", "unknown type tag"),
        ("date=S:dGVzdA", "unknown type tag"),
        ("flag=b:TRUE", "bool"),
        ("flag=b:1", "bool"),
        ("n=i:abc", "int64"),
        ("n=i:", "int64"),
        ("n=i:1.5", "int64"),
        ("n=i:--5", "int64"),
        ("n=i:+-5", "int64"),
        ("n=i: 5", "int64"),
        ("n=i:1_000", "int64"),
        ("n=i:9223372036854775808", "out of range"),
        ("n=i:-9223372036854775809", "out of range"),
        ("name=s:dGVzdA==", "base64url"),
        ("name=s:dGVzdB", "base64url"),
        ("name=s:dGVzd", "base64url"),
        ("name=s:dGV+dA", "base64url"),
        ("name=s:_w", "UTF-8"),
        ("d=d:1969-12-31", "year"),
        ("d=d:2025-13-01", "month"),
        ("d=d:2025-00-01", "month"),
        ("d=d:2025-04-31", "day"),
        ("d=d:2025-02-30", "day"),
        ("d=d:2025-01-00", "day"),
        ("d=d:2025-1-15", "YYYY-MM-DD"),
        ("d=d:2025-01-15T00:00:00Z", "YYYY-MM-DD"),
        ("ts=t:2025-01-15T10:30:00Z", "27 characters"),
        ("ts=t:2025-01-15T10:30:00.000Z", "27 characters"),
        ("ts=t:2025-01-15T24:00:00.000000Z", "time of day"),
        ("ts=t:2025-01-15T10:60:00.000000Z", "time of day"),
        ("ts=t:2025-01-15T10:30:60.000000Z", "time of day"),
        ("ts=t:1969-01-15T10:30:00.000000Z", "year"),
        ("ts=t:2025-01-15 10:30:00.000000Z", "27 characters"),
        ("x=n:", "null"),
        ("x=n:NULL", "null"),
        ("date=d:2025-01-15,date=d:2025-01-16", "duplicate"),
        ("n=i:\u0664\u0662", "ASCII"),
        ("d=d:\uff12025-01-15", "ASCII"),
        ("a=s:" + "A" * 1100, "1024"),
        ("date=d:2025-01-15\n", "YYYY-MM-DD"),
    ],
)
def test_rejections(bad: str, why: str) -> None:
    with pytest.raises(InvalidPartitionKey, match=why.replace("(", r"\(")):
        parse_partition_key(bad)


def test_feb_29_accepted_without_leap_check() -> None:
    assert parse_partition_key("d=d:2025-02-29").render() == "d=d:2025-02-29"


def test_length_limit_boundary() -> None:
    ok = "a=s:" + "A" * 1020
    assert len(ok) == 1024
    assert parse_partition_key(ok).render() == ok


def test_value_constructor_validates() -> None:
    for tag, value in [("i", "1"), ("i", True), ("b", "true"), ("d", "2025-02-30"), ("n", "null"), ("x", 1)]:
        with pytest.raises(InvalidPartitionKey):
            PartitionValue(tag, value)  # type: ignore[arg-type]
    with pytest.raises(InvalidPartitionKey, match="duplicate"):
        PartitionKey((("a", PartitionValue("n", None)), ("a", PartitionValue("n", None))))
    with pytest.raises(InvalidPartitionKey):
        PartitionKey.of({"Bad": PartitionValue("n", None)})


@pytest.mark.parametrize(
    "dims",
    [
        {"a": ("float", "1.5")},
        {"a": ("int64", "007")},
        {"a": ("bool", "TRUE")},
        {"a": ("date", "2025-02-30")},
        {"a": ("timestamp", "2025-01-15T10:30:00Z")},
        {"a": ("null", "")},
        {"a": ("string", 5)},
        {"A": ("string", "x")},
        {"a": "string"},
    ],
)
def test_from_dimensions_rejections(dims: dict[str, Any]) -> None:
    with pytest.raises(InvalidPartitionKey):
        PartitionKey.from_dimensions(dims)


def test_v2_proto_form_parsed() -> None:
    key = parse_partition_key_proto(load_fixture("partition_key_v2.json"))
    assert key.render() == "date=d:2026-04-09,region=s:dXMtZWFzdA"


def test_v1_legacy_map_form_rejected() -> None:
    with pytest.raises(InvalidPartitionKey, match="legacy v1"):
        parse_partition_key_proto(load_fixture("partition_key_v1.json"))


def test_v2_proto_every_kind() -> None:
    obj = {
        "dimensions": [
            {"name": "s", "value": {"stringValue": "🎉"}},
            {"name": "i", "value": {"int64Value": "-42"}},
            {"name": "j", "value": {"int64Value": 7}},
            {"name": "b", "value": {"boolValue": False}},
            {"name": "t", "value": {"timestampValue": "2025-01-15T10:30:00.000000Z"}},
            {"name": "n", "value": {"nullValue": "NULL_VALUE_UNSPECIFIED"}},
        ]
    }
    assert parse_partition_key_proto(obj).render() == (
        "b=b:false,i=i:-42,j=i:7,n=n:null,s=s:8J-OiQ,t=t:2025-01-15T10:30:00.000000Z"
    )
    assert parse_partition_key_proto({"dimensions": []}).is_unpartitioned


@pytest.mark.parametrize(
    "obj",
    [
        {"dimensions": [{"name": "a", "value": {"int64Value": "x"}}]},
        {"dimensions": [{"name": "a", "value": {"int64Value": True}}]},
        {"dimensions": [{"name": "a", "value": {"boolValue": "true"}}]},
        {"dimensions": [{"name": "a", "value": {"floatValue": 1}}]},
        {"dimensions": [{"name": "a", "value": {"stringValue": "x", "boolValue": True}}]},
        {"dimensions": [{"name": "a", "value": {"dateValue": "2025-13-01"}}]},
        {"dimensions": [{"name": "a", "value": {"nullValue": "x"}}]},
        {"dimensions": [{"name": "a"}]},
        {"dimensions": [{"value": {"stringValue": "x"}}]},
        {
            "dimensions": [
                {"name": "a", "value": {"stringValue": "x"}},
                {"name": "a", "value": {"stringValue": "y"}},
            ]
        },
        {"dimensions": "a=s:eA"},
    ],
)
def test_v2_proto_rejections(obj: dict[str, Any]) -> None:
    with pytest.raises(InvalidPartitionKey):
        parse_partition_key_proto(obj)


_UNICODE = st.characters(blacklist_categories=["Cs"])
_dim_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_values = st.one_of(
    st.builds(
        PartitionValue,
        st.just("s"),
        st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20),
    ),
    st.builds(PartitionValue, st.just("i"), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.builds(PartitionValue, st.just("b"), st.booleans()),
    st.builds(PartitionValue, st.just("d"), st.dates(min_value=date(1970, 1, 1)).map(str)),
    st.builds(
        PartitionValue,
        st.just("t"),
        st.datetimes(min_value=datetime(1970, 1, 1)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    ),
    st.builds(PartitionValue, st.just("n"), st.none()),
)


@given(st.dictionaries(_dim_names, _values, max_size=5))
def test_render_parse_roundtrip(dims: dict[str, PartitionValue]) -> None:
    key = PartitionKey.of(dims)
    rendered = key.render()
    assert parse_partition_key(rendered) == key
    assert parse_partition_key(rendered).render() == rendered
    assert require_canonical_partition_key(rendered) == rendered


def test_partition_values_are_the_users_spelling_per_dimension() -> None:
    assert partition_values("date=d:2025-03-01,region=s:ZXU") == {"date": "2025-03-01", "region": "eu"}
    assert partition_values("hour=t:2025-03-01T10:00:00.000000Z") == {"hour": "2025-03-01T10:00:00Z"}
    assert partition_values("") is None and partition_values(None) is None
    assert partition_values("not a key") is None  # never the raw text: it may be an encoding
