"""AssetKey (contracts §2): both renderings, every worked example and every listed error."""

from __future__ import annotations

import dataclasses

import pytest
from servo.core.errors import InvalidAssetKey, InvalidInput
from servo.core.keys import MAX_SELECTION_ITEMS, AssetKey, canonical_asset_key, canonical_selection


@pytest.mark.parametrize(
    ("raw", "namespace", "name", "dot"),
    [
        ("analytics/daily_sales", "analytics", "daily_sales", "analytics.daily_sales"),
        ("staging.users.daily", "staging", "users.daily", "staging.users.daily"),
        ("raw/a.b", "raw", "a.b", "raw.a.b"),
        ("raw.events", "raw", "events", "raw.events"),
        ("raw/events", "raw", "events", "raw.events"),
        ("a1_/b2_.c_3", "a1_", "b2_.c_3", "a1_.b2_.c_3"),
    ],
)
def test_parse_examples(raw: str, namespace: str, name: str, dot: str) -> None:
    key = AssetKey.parse(raw)
    assert (key.namespace, key.name) == (namespace, name)
    assert str(key) == dot
    assert key.planner == f"{namespace}/{name}"
    assert canonical_asset_key(raw) == dot


@pytest.mark.parametrize(
    "bad",
    [
        "Raw.events",
        "raw",
        " raw.events",
        "raw.events ",
        "raw. events",
        "raw.\tevents",
        "raw..events",
        "raw/events/x",
        "raw.ev-ents",
        "analytics/",
        "users..daily",
        "",
        "/events",
        ".events",
        "raw.events.",
        "raw/.events",
        "1raw.events",
        "raw.1events",
        "raw.évents",
        "raw.events\n",
        "raw." + "a" * 300,
    ],
)
def test_parse_errors_carry_the_bad_input(bad: str) -> None:
    with pytest.raises(InvalidAssetKey) as err:
        AssetKey.parse(bad)
    assert repr(bad)[1:-1][:40] in err.value.message
    assert isinstance(err.value, InvalidInput)
    assert err.value.details["asset_key"] == bad


def test_length_limit_is_256_bytes() -> None:
    ok = "raw." + "a" * 252
    assert str(AssetKey.parse(ok)) == ok
    with pytest.raises(InvalidAssetKey, match="256"):
        AssetKey.parse(ok + "a")


def test_non_str_rejected() -> None:
    with pytest.raises(InvalidAssetKey):
        AssetKey.parse(42)  # type: ignore[arg-type]


def test_constructor_validates_and_is_frozen() -> None:
    assert str(AssetKey("raw", "a.b")) == "raw.a.b"
    with pytest.raises(InvalidAssetKey):
        AssetKey("Raw", "events")
    with pytest.raises(InvalidAssetKey):
        AssetKey("raw", "a..b")
    key = AssetKey("raw", "events")
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.name = "x"  # type: ignore[misc]
    assert key == AssetKey.parse("raw/events")
    assert hash(key) == hash(AssetKey.parse("raw.events"))


def test_canonical_selection_sorts_and_dedups() -> None:
    got = canonical_selection(["raw/events", "analytics.daily_sales", "raw.events"])
    assert got == ["analytics.daily_sales", "raw.events"]


def test_canonical_selection_limit() -> None:
    keys = [f"ns.a{i}" for i in range(MAX_SELECTION_ITEMS)]
    assert len(canonical_selection(keys)) == MAX_SELECTION_ITEMS
    with pytest.raises(InvalidAssetKey, match="10000"):
        canonical_selection([*keys, "ns.extra"])


def test_canonical_selection_rejects_bad_item() -> None:
    with pytest.raises(InvalidAssetKey, match=r"raw\.\.events"):
        canonical_selection(["raw.events", "raw..events"])
