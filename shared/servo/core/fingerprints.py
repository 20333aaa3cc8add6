"""Request and plan fingerprints (contracts §7): what makes a repeated run_key "the same request".

The request fingerprint is deliberately *not* canonical JSON: the reference hashes a struct serialized in
field order, so we reproduce that order byte for byte. The plan fingerprint is canonical JSON behind a
fixed domain prefix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from servo.core.canonical_json import canonical_dumps
from servo.core.errors import InvalidInput, PlanError
from servo.core.keys import canonical_selection
from servo.core.partition_keys import (
    PartitionKey,
    PartitionValue,
    parse_partition_key,
    require_canonical_partition_key,
)

# ---------------------------------------------------------------------------------------------- request


def _byte_sorted_labels(labels: Mapping[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidInput(f"label {key!r}={value!r}: labels must map strings to strings")
    return {key: labels[key] for key in sorted(labels, key=lambda k: k.encode("utf-8"))}


def _payload(
    selection: list[str],
    include_upstream: bool,
    include_downstream: bool,
    partition_key: str | None,
    labels: dict[str, str],
    partitions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    # Insertion order is the wire order: selection, include_upstream, include_downstream,
    # partitions?, partition_key?, labels.
    payload: dict[str, Any] = {
        "selection": selection,
        "include_upstream": bool(include_upstream),
        "include_downstream": bool(include_downstream),
    }
    if partitions is not None:
        payload["partitions"] = partitions
    if partition_key:
        payload["partition_key"] = partition_key
    payload["labels"] = labels
    return payload


def _hash(payload: Mapping[str, Any]) -> str:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def request_fingerprint(
    selection: Sequence[str],
    include_upstream: bool,
    include_downstream: bool,
    partition_key: str | None,
    labels: Mapping[str, str],
) -> str:
    """hex(sha256) of the compact trigger payload (contracts §7.2), the value stored with a run_key.

    ``selection`` is canonicalized to dot keys, sorted and de-duplicated; ``partition_key`` must be
    canonical and is omitted when ``None`` or ``""``; labels are byte-sorted.
    """
    if partition_key:
        require_canonical_partition_key(partition_key)
    return _hash(
        _payload(
            canonical_selection(selection),
            include_upstream,
            include_downstream,
            partition_key,
            _byte_sorted_labels(labels),
        )
    )


def _time_as_string(key: PartitionKey, shorten: bool) -> str:
    dims: list[tuple[str, PartitionValue]] = []
    for name, value in key.dimensions:
        if value.tag in ("d", "t"):
            text = str(value.value)
            if shorten and text.endswith(".000000Z"):
                text = text[: -len(".000000Z")] + "Z"
            value = PartitionValue("s", text)
        dims.append((name, value))
    return PartitionKey(tuple(dims)).render()


def _alternative_keys(partition_key: str | None, legacy: Sequence[tuple[str, str]] | None) -> set[str]:
    keys = {partition_key or ""}
    if partition_key:
        parsed = parse_partition_key(partition_key)
        keys.add(_time_as_string(parsed, shorten=False))
        keys.add(_time_as_string(parsed, shorten=True))
    if legacy:
        # The raw legacy key: every legacy pair as an s: value, before time dimensions were typed.
        raw = PartitionKey.of({name: PartitionValue("s", value) for name, value in legacy})
        keys.add(raw.render())
    return keys


def _string_pairs(
    partition_key: str | None, legacy: Sequence[tuple[str, str]] | None
) -> list[dict[str, str]]:
    if legacy:
        pairs = [(str(k), str(v)) for k, v in legacy]
    elif partition_key:
        dims = parse_partition_key(partition_key).dimensions
        if any(value.tag != "s" for _, value in dims):
            return []
        pairs = [(name, str(value.value)) for name, value in dims]
    else:
        return []
    pairs.sort(key=lambda kv: (kv[0].encode("utf-8"), kv[1].encode("utf-8")))
    return [{"key": k, "value": v} for k, v in pairs]


def request_fingerprint_variants(
    selection: Sequence[str],
    include_upstream: bool,
    include_downstream: bool,
    partition_key: str | None,
    labels: Mapping[str, str],
    legacy_partitions: Sequence[tuple[str, str]] | None = None,
) -> set[str]:
    """Every fingerprint an older writer could have stored for this same request (contracts §7.2).

    Includes the primary fingerprint; the variants are used only to compare with an existing reservation.
    """
    primary = request_fingerprint(selection, include_upstream, include_downstream, partition_key, labels)
    sel = canonical_selection(selection)
    sorted_labels = _byte_sorted_labels(labels)
    variants = {primary}
    for alt in _alternative_keys(partition_key, legacy_partitions):
        variants.add(_hash(_payload(sel, include_upstream, include_downstream, alt, sorted_labels)))
        variants.add(_hash(_payload(sel, include_upstream, include_downstream, alt, sorted_labels, [])))
    pairs = _string_pairs(partition_key, legacy_partitions)
    if pairs:
        variants.add(_hash(_payload(sel, include_upstream, include_downstream, None, sorted_labels, pairs)))
    return variants


def fingerprints_match(
    existing: str | None,
    requested: str | None,
    variants: set[str],
    existing_created_at_ms: int | None,
    cutoff_ms: int | None,
) -> bool:
    """The §7.1 match rule between a stored reservation's fingerprint and a new request's.

    Both set: match iff the existing one is the requested one or a variant of it. Neither set: match.
    Only the request's set: match when no cutoff is configured, or the reservation predates the cutoff
    (a reservation written before fingerprints existed). Only the existing one set: mismatch.
    """
    if existing is not None and requested is not None:
        return existing == requested or existing in variants
    if existing is None and requested is None:
        return True
    if existing is None:
        if cutoff_ms is None:
            return True
        return existing_created_at_ms is not None and existing_created_at_ms < cutoff_ms
    return False


# ---------------------------------------------------------------------------------------------- plan

DEFAULT_MEMORY_BYTES = 536_870_912
DEFAULT_CPU_MILLICORES = 1000
DEFAULT_TIMEOUT_MS = 3_600_000
# The golden value depends on the reference's literal prefix, so it is not renamed to servo.
PLAN_FINGERPRINT_DOMAIN = "arco-plan:v1:"


@dataclass(frozen=True, slots=True)
class PlannedTaskSpec:
    """One task as the plan fingerprint sees it; ``key`` is a planner TaskKey (``ns/name[pk]:op``)."""

    key: str
    upstream_keys: tuple[str, ...] = field(default=())
    priority: int = 0
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    cpu_millicores: int = DEFAULT_CPU_MILLICORES
    timeout_ms: int = DEFAULT_TIMEOUT_MS


def _byte_key(s: str) -> bytes:
    return s.encode("utf-8")


def plan_fingerprint(tenant_id: str, workspace_id: str, tasks: Sequence[PlannedTaskSpec]) -> str:
    """``sha256:`` + hex(sha256(``arco-plan:v1:`` + canonical JSON of the plan)), contracts §7.3.

    Task ids and stages are excluded, so the same graph always hashes the same.

    Raises:
        PlanError: two tasks share a key.
        CanonicalJsonError: a non-integer resource value.
    """
    keys = [task.key for task in tasks]
    if len(set(keys)) != len(keys):
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        raise PlanError(f"plan has duplicate task keys: {', '.join(duplicates)}")
    body = {
        "version": 1,
        "tenantId": tenant_id,
        "workspaceId": workspace_id,
        "tasks": [
            {
                "key": task.key,
                "upstreamKeys": sorted(task.upstream_keys, key=_byte_key),
                "priority": task.priority,
                "resources": {
                    "memoryBytes": task.memory_bytes,
                    "cpuMillicores": task.cpu_millicores,
                    "timeoutMs": task.timeout_ms,
                },
            }
            for task in sorted(tasks, key=lambda t: _byte_key(t.key))
        ],
    }
    preimage = PLAN_FINGERPRINT_DOMAIN + canonical_dumps(body)
    return "sha256:" + hashlib.sha256(preimage.encode("utf-8")).hexdigest()
