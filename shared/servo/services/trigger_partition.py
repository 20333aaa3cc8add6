"""The partition a run is for, checked against its roots' deployed partitioning (user-surface §1.3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from servo.core.errors import InvalidInput
from servo.core.partition_keys import PartitionKey, PartitionValue, parse_partition_key
from servo.services.manifests import DeployedManifest
from servo.services.trigger_request import TriggerRequest


def _legacy_value(dim: Mapping[str, Any], value: str) -> PartitionValue:
    """A legacy string partition value, tagged by the manifest dimension's kind (user-surface §1.3)."""
    if dim.get("kind") == "time":
        granularity = dim.get("granularity", "day")
        if granularity == "hour":
            return PartitionValue("t", value if len(value) == 27 else f"{value[:13]}:00:00.000000Z")
        if granularity == "day":
            return PartitionValue("d", value)
    return PartitionValue("s", value)


def resolve_partition(
    manifest: DeployedManifest, roots: Sequence[str], request: TriggerRequest
) -> str | None:
    """The canonical partition key of the run, checked against the roots' deployed partitioning."""
    dims_by_root = {r: tuple(sorted(str(d["name"]) for d in manifest.assets[r].dimensions)) for r in roots}
    shapes = set(dims_by_root.values())
    if len(shapes) > 1:
        raise InvalidInput("the selected assets are partitioned differently; trigger them in separate runs")
    (dims,) = shapes
    pk = request.partition_key
    if request.legacy_partitions is not None:
        by_name = {str(d["name"]): d for d in manifest.assets[roots[0]].dimensions}
        values = {}
        for key, value in request.legacy_partitions:
            if key not in by_name:
                raise InvalidInput(f"unknown partition dimension {key!r}")
            values[key] = _legacy_value(by_name[key], value)
        pk = PartitionKey.of(values).render() or None
    if not dims:
        if pk:
            raise InvalidInput(f"assets {', '.join(roots)} are not partitioned; drop partitionKey")
        return None
    if not pk:
        raise InvalidInput(
            f"assets {', '.join(roots)} are partitioned by {', '.join(dims)}; pass partitionKey"
        )
    given = tuple(sorted(k for k, _ in parse_partition_key(pk).dimensions))
    if given != dims:
        raise InvalidInput(
            f"partitionKey dimensions ({', '.join(given)}) must equal the assets' ({', '.join(dims)})"
        )
    return pk
