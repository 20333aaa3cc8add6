"""Canonical JSON (contracts §1): golden vectors, worked examples and every rejection."""

from __future__ import annotations

import hashlib
import json
from enum import IntEnum
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servo.core.canonical_json import _normalize, canonical_bytes, canonical_dumps, is_canonical, loads_strict
from servo.core.errors import CanonicalJsonError, InvalidInput

from tests.conftest import load_fixture

VECTORS = load_fixture("canonical_json_vectors.json")["vectors"]


def test_fixture_holds_twelve_vectors() -> None:
    assert len(VECTORS) == 12


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_golden_vector(vector: dict[str, Any]) -> None:
    if "expected_canonical" in vector:
        assert canonical_dumps(vector["input"]) == vector["expected_canonical"]
        assert canonical_bytes(vector["input"]) == vector["expected_canonical"].encode("utf-8")
        assert is_canonical(vector["expected_canonical"].encode("utf-8"))
    else:  # an error vector
        with pytest.raises(CanonicalJsonError):
            canonical_dumps(vector["input"])


def test_nested_example() -> None:
    assert canonical_dumps({"b": {"d": 2, "c": 1}, "a": 0}) == '{"a":0,"b":{"c":1,"d":2}}'


def test_keys_sort_by_utf8_bytes_not_utf16() -> None:
    keys = ["é", "z", "Z", "a", "🎉", "\ufffd"]
    out = canonical_dumps(dict.fromkeys(keys, 0))
    assert list(json.loads(out)) == ["Z", "a", "z", "é", "\ufffd", "🎉"]
    # UTF-16 order would put the emoji (a surrogate pair, 0xD83C) before U+FFFD.
    assert out.index("\ufffd") < out.index("🎉")


def test_control_character_escapes() -> None:
    assert canonical_dumps("\x01") == '"\\u0001"'
    assert canonical_dumps("\x1f") == '"\\u001f"'
    assert canonical_dumps("\b\f\n\r\t") == '"\\b\\f\\n\\r\\t"'
    assert canonical_dumps('"\\') == '"\\"\\\\"'


def test_raw_characters_stay_raw() -> None:
    assert canonical_dumps("\x7f/\u2028é🎉") == '"\x7f/\u2028é🎉"'
    assert canonical_bytes("é") == b'"\xc3\xa9"'


@pytest.mark.parametrize("bad", [1.25, 1.0, 1e3, float("nan"), float("inf"), float("-inf")])
def test_every_float_is_rejected(bad: float) -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_dumps(bad)


def test_float_error_names_the_json_path() -> None:
    with pytest.raises(CanonicalJsonError, match=r"\$\.x") as err:
        canonical_dumps({"x": 1.25})
    assert isinstance(err.value, InvalidInput)
    with pytest.raises(CanonicalJsonError, match=r"\$\.a\[1\]\.b"):
        canonical_dumps({"a": [0, {"b": 0.5}]})


def test_integer_range_limits() -> None:
    assert canonical_dumps(-(2**63)) == str(-(2**63))
    assert canonical_dumps(2**64 - 1) == str(2**64 - 1)
    for bad in (-(2**63) - 1, 2**64):
        with pytest.raises(CanonicalJsonError, match="out of range"):
            canonical_dumps({"n": [bad]})


def test_bools_and_null() -> None:
    assert canonical_dumps([True, False, None]) == "[true,false,null]"


def test_tuples_are_arrays() -> None:
    assert canonical_dumps((1, "a")) == '[1,"a"]'


@pytest.mark.parametrize("bad", [{1: "x"}, {None: 1}, {b"k": 1}, {"a": {(1, 2): 0}}])
def test_non_string_keys_rejected(bad: object) -> None:
    with pytest.raises(CanonicalJsonError, match="key"):
        canonical_dumps(bad)


@pytest.mark.parametrize("bad", [b"bytes", {1, 2}, object(), complex(1, 2)])
def test_unsupported_types_rejected(bad: object) -> None:
    with pytest.raises(CanonicalJsonError, match=r"\$"):
        canonical_dumps({"v": bad})


def test_lone_surrogate_rejected() -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_dumps({"s": "\ud800"})
    with pytest.raises(CanonicalJsonError):
        canonical_dumps({"\udfff": 1})


def test_loads_strict_parses_plain_json() -> None:
    assert loads_strict(b'{"a":[1,true,null,"x"]}') == {"a": [1, True, None, "x"]}
    assert loads_strict(' {"a": 1} ') == {"a": 1}


@pytest.mark.parametrize(
    "data",
    [
        b'{"x":1.25}',
        b'{"x":1.0}',
        b'{"x":1e3}',
        b'{"x":NaN}',
        b'{"x":Infinity}',
        b'{"x":-Infinity}',
        b'{"a":1,"a":2}',
        b'{"o":{"k":1,"k":1}}',
        b'"\xff"',
        b'{"a":"\xc3"}',
        b'{"a":18446744073709551616}',
        b'{"a":-9223372036854775809}',
        b'{"a":"\\ud800"}',
        b"{",
        b"",
        b'"a" "b"',
        "\ufeff{}".encode(),
    ],
)
def test_loads_strict_rejections(data: bytes) -> None:
    with pytest.raises(CanonicalJsonError):
        loads_strict(data)


@pytest.mark.parametrize(
    ("data", "message", "key"),
    [
        (b'{"a":1,"b":{"k":1,"j":2,"k":3},"a":2}', "duplicate object key 'k'", "k"),
        (b'{"a":1,"b":2,"b":3,"a":4}', "duplicate object key 'b'", "b"),
        ("\ufeff{}".encode(), "Unexpected UTF-8 BOM", None),
    ],
)
def test_loads_strict_says_what_it_refused(data: bytes, message: str, key: str | None) -> None:
    """The parser is built once and reused (json.loads built one a call): its refusals read the same."""
    for _ in range(2):
        with pytest.raises(CanonicalJsonError) as refused:
            loads_strict(data)
        assert message in refused.value.message
        assert (refused.value.details or {}).get("key") == key


def test_loads_strict_deep_nesting_is_a_typed_error() -> None:
    with pytest.raises(CanonicalJsonError):
        loads_strict("[" * 100_000 + "]" * 100_000)


def test_canonical_dumps_deep_nesting_is_a_typed_error() -> None:
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(CanonicalJsonError):
        canonical_dumps(value)


def test_is_canonical() -> None:
    assert is_canonical(b'{"a":0,"b":{"c":1,"d":2}}')
    assert not is_canonical(b'{"b":0,"a":1}')
    assert not is_canonical(b'{"a": 0}')
    assert not is_canonical(b'{"a":1.5}')
    assert not is_canonical(b'{"a":"\\u00e9"}')
    assert not is_canonical(b"\xff")
    assert not is_canonical(b'{"a":0}\n')


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(alphabet=st.characters(blacklist_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet=st.characters(blacklist_categories=["Cs"])), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_roundtrip_is_canonical_and_stable(value: Any) -> None:
    data = canonical_bytes(value)
    assert is_canonical(data)
    assert loads_strict(data) == value
    assert canonical_bytes(loads_strict(data)) == data


def test_contract_event_example_matches_its_witness_checksum() -> None:
    # contracts §6: the example RunTriggered event, built in arbitrary key order.
    event = {
        "workspace_id": "prod",
        "timestamp": "2016-07-30T23:54:10.259Z",
        "tenant_id": "acme",
        "source": "arco-flow/acme/prod",
        "idempotency_key": "run:nightly-2016-07-30",
        "event_version": 1,
        "event_type": "RunTriggered",
        "event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "data": {
            "type": "run_triggered",
            "trigger": {"user_id": "user@example.com", "type": "manual"},
            "run_key": "nightly-2016-07-30",
            "run_id": "01ARZ3NDEKTSV4RRFFQ69G5FAW",
            "root_assets": ["raw.events"],
            "plan_id": "01ARZ3NDEKTSV4RRFFQ69G5FAX",
            "labels": {"team": "data"},
        },
        "correlation_id": "01ARZ3NDEKTSV4RRFFQ69G5FAW",
    }
    digest = hashlib.sha256(canonical_bytes(event)).hexdigest()
    assert f"sha256:{digest}" == "sha256:9bfa721fcc989ccb6e07d15a4d839821b4404f7873d9bc12a7fa2083a5c9930d"


def _reference_bytes(value: Any) -> bytes:
    # The definition: a copy whose keys are ordered by their UTF-8 bytes, written without spaces.
    ordered = _normalize(value, "$")
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@given(json_values)
def test_plain_values_encode_as_the_byte_ordered_copy(value: Any) -> None:
    # Plain values skip the normalized copy: json's own key sort must give the same bytes.
    assert canonical_bytes(value) == _reference_bytes(value)


@pytest.mark.parametrize(
    "value",
    [
        {"\U0001f389": 1, "\ufffd": 2, "é": 3},  # UTF-16 would order these differently
        [(1, 2), {"a": (3,)}],
        MappingProxyType({"b": 1, "a": MappingProxyType({"d": 2, "c": 1})}),
        {"a": IntEnum("Small", "ONE")["ONE"]},
    ],
)
def test_values_that_are_not_plain_still_encode_canonically(value: Any) -> None:
    assert canonical_bytes(value) == _reference_bytes(value)


@pytest.mark.parametrize(
    "text", ['{"a":"\\ud800"}', '["x", {"\\udc00": 1}]', '"\\\\u0041\\ud83c"', '{"k":"\ud800"}']
)
def test_loads_strict_still_finds_a_lone_surrogate(text: str) -> None:
    with pytest.raises(CanonicalJsonError):
        loads_strict(text)
