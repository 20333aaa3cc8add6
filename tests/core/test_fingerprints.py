"""Request and plan fingerprints (contracts §7): the ✔ values, variants and the match rule."""

from __future__ import annotations

import hashlib
import json

import pytest
from servo.core.errors import (
    CanonicalJsonError,
    InvalidAssetKey,
    InvalidInput,
    InvalidPartitionKey,
    PlanError,
)
from servo.core.fingerprints import (
    PlannedTaskSpec,
    fingerprints_match,
    plan_fingerprint,
    request_fingerprint,
    request_fingerprint_variants,
)

PRIMARY = "b505a26bc5d7b1689e3fad64200334b6eb39313ef972eb3a237f3eae7bc7511c"
UNPARTITIONED = "a6c447db2c48158bf068de8a1430656f9c0a488a26f908d7f5a5b820a72b814d"
PLAN_GOLDEN = "sha256:6fb2d2adcd8cbe9af2dc86d711da22766ab78362cf6a20941a3f1b75c59af6a8"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_request_fingerprint_primary_example() -> None:
    got = request_fingerprint(
        ["raw/events", "analytics.daily_sales", "raw.events"],
        False,
        False,
        "date=d:2025-01-15",
        {"team": "data", "env": "prod"},
    )
    assert got == PRIMARY
    body = (
        '{"selection":["analytics.daily_sales","raw.events"],"include_upstream":false,'
        '"include_downstream":false,"partition_key":"date=d:2025-01-15","labels":{"env":"prod","team":"data"}}'
    )
    assert _sha(body) == PRIMARY


def test_request_fingerprint_unpartitioned_example() -> None:
    assert request_fingerprint(["raw.events"], True, False, None, {}) == UNPARTITIONED
    assert request_fingerprint(["raw/events"], True, False, "", {}) == UNPARTITIONED


def test_request_fingerprint_rejects_bad_input() -> None:
    with pytest.raises(InvalidAssetKey):
        request_fingerprint(["raw..events"], False, False, None, {})
    with pytest.raises(InvalidPartitionKey, match="canonical"):
        request_fingerprint(["raw.events"], False, False, "region=s:dXMtZWFzdA,date=d:2025-01-15", {})
    with pytest.raises(InvalidInput):
        request_fingerprint(["raw.events"], False, False, None, {"a": 1})  # type: ignore[dict-item]


def test_variants_include_primary_and_partitions_example() -> None:
    variants = request_fingerprint_variants(["raw.events"], False, False, "region=s:dXMtZWFzdA", {})
    assert request_fingerprint(["raw.events"], False, False, "region=s:dXMtZWFzdA", {}) in variants
    partitions = [fp for fp in variants if fp.startswith("d5071286") and fp.endswith("6eb78fed")]
    assert len(partitions) == 1
    body = (
        '{"selection":["raw.events"],"include_upstream":false,"include_downstream":false,'
        '"partitions":[{"key":"region","value":"us-east"}],"labels":{}}'
    )
    assert partitions == [_sha(body)]


def _fp(payload: dict[str, object]) -> str:
    return _sha(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))


def test_variants_alternative_keys_and_empty_partitions() -> None:
    pk = "date=d:2025-01-15,ts=t:2025-01-15T10:00:00.000000Z"
    variants = request_fingerprint_variants(["raw.events"], False, True, pk, {"b": "2", "a": "1"})
    base = {"selection": ["raw.events"], "include_upstream": False, "include_downstream": True}
    labels = {"a": "1", "b": "2"}
    as_string = "date=s:MjAyNS0wMS0xNQ,ts=s:MjAyNS0wMS0xNVQxMDowMDowMC4wMDAwMDBa"
    shortened = "date=s:MjAyNS0wMS0xNQ,ts=s:MjAyNS0wMS0xNVQxMDowMDowMFo"
    for alt in (pk, as_string, shortened):
        assert _fp({**base, "partition_key": alt, "labels": labels}) in variants
        assert _fp({**base, "partitions": [], "partition_key": alt, "labels": labels}) in variants
    # Typed (non-string) dimensions never produce the string-only `partitions` form.
    assert _fp({**base, "partitions": [], "labels": labels}) not in variants
    assert len(variants) == 6


def test_variants_raw_legacy_key() -> None:
    pk = "date=d:2025-01-15"
    variants = request_fingerprint_variants(["raw.events"], False, False, pk, {}, [("date", "2025-01-15")])
    base = {"selection": ["raw.events"], "include_upstream": False, "include_downstream": False}
    assert _fp({**base, "partition_key": "date=s:MjAyNS0wMS0xNQ", "labels": {}}) in variants
    pairs = [{"key": "date", "value": "2025-01-15"}]
    assert _fp({**base, "partitions": pairs, "labels": {}}) in variants


def test_variants_partitions_sorted_by_key_then_value() -> None:
    pk = "a=s:eA,b=s:eQ"
    variants = request_fingerprint_variants(["raw.events"], False, False, pk, {})
    base = {"selection": ["raw.events"], "include_upstream": False, "include_downstream": False}
    pairs = [{"key": "a", "value": "x"}, {"key": "b", "value": "y"}]
    assert _fp({**base, "partitions": pairs, "labels": {}}) in variants


def test_variants_unpartitioned() -> None:
    variants = request_fingerprint_variants(["raw.events"], True, False, None, {})
    base = {"selection": ["raw.events"], "include_upstream": True, "include_downstream": False}
    assert variants == {UNPARTITIONED, _fp({**base, "partitions": [], "labels": {}})}


def test_match_rule() -> None:
    variants = {"n", "v"}
    assert fingerprints_match("n", "n", variants, None, None)
    assert fingerprints_match("v", "n", variants, None, None)
    assert not fingerprints_match("x", "n", variants, None, None)
    assert fingerprints_match(None, None, set(), None, 5)
    assert fingerprints_match(None, "n", variants, None, None)
    assert fingerprints_match(None, "n", variants, 4, 5)
    assert not fingerprints_match(None, "n", variants, 5, 5)
    assert not fingerprints_match(None, "n", variants, None, 5)
    assert not fingerprints_match("n", None, variants, 1, None)


def test_plan_fingerprint_golden() -> None:
    assert plan_fingerprint("acme", "production", [PlannedTaskSpec("raw/events:materialize")]) == PLAN_GOLDEN


def test_plan_fingerprint_is_order_insensitive_and_input_sensitive() -> None:
    a = PlannedTaskSpec("raw/events:materialize")
    b = PlannedTaskSpec("staging/cleaned:materialize", ("raw/events:materialize", "raw/a:materialize"))
    b_reordered = PlannedTaskSpec(
        "staging/cleaned:materialize", ("raw/a:materialize", "raw/events:materialize")
    )
    first = plan_fingerprint("acme", "production", [a, b])
    assert first == plan_fingerprint("acme", "production", [b_reordered, a])
    assert first != plan_fingerprint("acme", "staging", [a, b])
    assert first != plan_fingerprint(
        "acme", "production", [a, PlannedTaskSpec(b.key, b.upstream_keys, priority=1)]
    )


def test_plan_fingerprint_rejects_duplicates_and_floats() -> None:
    a = PlannedTaskSpec("raw/events:materialize")
    with pytest.raises(PlanError, match="raw/events:materialize"):
        plan_fingerprint("acme", "production", [a, a])
    with pytest.raises(CanonicalJsonError):
        plan_fingerprint("acme", "production", [PlannedTaskSpec("x/y:check", memory_bytes=1.5)])  # type: ignore[arg-type]
