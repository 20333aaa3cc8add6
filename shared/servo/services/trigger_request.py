"""A TriggerRun request body, parsed and bounded (contracts §7): a typed error for anything else."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servo.core.errors import InvalidInput
from servo.core.partition_keys import require_canonical_partition_key

MAX_RUN_KEY_BYTES = 256
MAX_PARTITION_KEY_BYTES = 1024
MAX_LABELS = 128
MAX_LABEL_KEY = 128
MAX_LABEL_VALUE = 2048
MAX_LEGACY_PARTITIONS = 128
RESERVED_LABEL_PREFIXES = ("servo.", "arco.")


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    selection: tuple[str, ...]
    include_upstream: bool
    include_downstream: bool
    partition_key: str | None
    legacy_partitions: tuple[tuple[str, str], ...] | None
    run_key: str | None
    labels: Mapping[str, str]
    timeout_seconds: int | None
    traceparent: str | None


def _bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be a boolean")
    return value


def parse_run_key(run_key: Any) -> str | None:
    if run_key is not None and (
        not isinstance(run_key, str) or not run_key or len(run_key.encode()) > MAX_RUN_KEY_BYTES
    ):
        raise InvalidInput(f"runKey must be a string of 1..{MAX_RUN_KEY_BYTES} bytes")
    return run_key


def parse_labels(body: Mapping[str, Any]) -> dict[str, str]:
    """The body's ``labels``, byte-sorted; a reserved (``servo.``) key is refused by name."""
    labels = body.get("labels")
    labels = {} if labels is None else labels  # null means none; false or [] is a wrong type (400)
    if not isinstance(labels, Mapping) or len(labels) > MAX_LABELS:
        raise InvalidInput(f"labels must be an object of at most {MAX_LABELS} entries")
    for key, value in labels.items():
        if not isinstance(value, str) or not key or len(key) > MAX_LABEL_KEY or len(value) > MAX_LABEL_VALUE:
            raise InvalidInput(
                f"label {key!r}: keys are 1..{MAX_LABEL_KEY} chars, values strings ≤ {MAX_LABEL_VALUE}"
            )
        if key.startswith(RESERVED_LABEL_PREFIXES):
            raise InvalidInput(f"label {key!r} uses a reserved prefix (servo.*)")
    return {k: labels[k] for k in sorted(labels, key=lambda s: s.encode())}


def parse_trigger_request(
    body: Mapping[str, Any], idempotency_key: str | None, traceparent: str | None
) -> TriggerRequest:
    selection = body.get("selection")
    if not isinstance(selection, list) or not all(isinstance(s, str) for s in selection):
        raise InvalidInput("selection must be a list of asset keys")
    if not selection:
        raise InvalidInput("selection must name at least one asset")
    if len(selection) > 10_000:
        raise InvalidInput("selection may hold at most 10000 asset keys")
    run_key = parse_run_key(body.get("runKey", idempotency_key))
    pk = body.get("partitionKey")
    if pk is not None:
        if not isinstance(pk, str) or len(pk.encode()) > MAX_PARTITION_KEY_BYTES:
            raise InvalidInput(f"partitionKey must be a string of at most {MAX_PARTITION_KEY_BYTES} bytes")
        pk = require_canonical_partition_key(pk) or None
    legacy = body.get("partitions")
    legacy_pairs: tuple[tuple[str, str], ...] | None = None
    if legacy is not None:
        if pk is not None:
            raise InvalidInput("partitionKey and partitions cannot be combined")
        if not isinstance(legacy, list) or len(legacy) > MAX_LEGACY_PARTITIONS:
            raise InvalidInput(f"partitions must be a list of at most {MAX_LEGACY_PARTITIONS} {{key, value}}")
        pairs = []
        for item in legacy:
            if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
                raise InvalidInput("each partition must be {key, value} strings")
            key, value = item["key"], item.get("value")
            if not isinstance(value, str) or len(key.encode()) > 64 or len(value.encode()) > 256:
                raise InvalidInput("partition keys are at most 64 bytes and values at most 256 bytes")
            pairs.append((key, value))
        legacy_pairs = tuple(sorted(pairs))
    labels = parse_labels(body)
    timeout = body.get("timeoutSeconds")
    if timeout is not None and (
        not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 7 * 86400
    ):
        raise InvalidInput("timeoutSeconds must be an integer from 1 to 604800")
    return TriggerRequest(
        selection=tuple(selection),
        include_upstream=_bool(body, "includeUpstream"),
        include_downstream=_bool(body, "includeDownstream"),
        partition_key=pk,
        legacy_partitions=legacy_pairs,
        run_key=run_key,
        labels=labels,
        timeout_seconds=timeout,
        traceparent=traceparent,
    )
