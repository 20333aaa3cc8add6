"""Can an asset depend on another, given their partitions? Checked at validate and deploy.

A run materializes every task for one partition key (user-surface §1.3), so two partitioned assets on
one dependency edge must be partitioned alike: the same dimension names, each of the same kind (and
granularity for time). A daily asset feeding a static-partitioned one would otherwise deploy fine and
fail only when run. An edge between a partitioned and an unpartitioned asset stays allowed: each can
be run on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def describe_dimensions(dimensions: Sequence[Mapping[str, Any]]) -> str:
    """``date (daily), region (static)``: a manifest's partition dimensions in the user's words."""
    words = {"year": "yearly", "month": "monthly", "day": "daily", "hour": "hourly"}
    shown = []
    for dim in dimensions:
        kind = dim.get("kind")
        label = words.get(str(dim.get("granularity")), "time") if kind == "time" else str(kind)
        shown.append(f"{dim.get('name')} ({label})")
    return ", ".join(shown) or "nothing"


def _shape(dimensions: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Any, Any]]:
    return {str(d.get("name")): (d.get("kind"), d.get("granularity")) for d in dimensions}


def partition_mismatch(
    key: str,
    dimensions: Sequence[Mapping[str, Any]],
    upstream_key: str,
    upstream_dimensions: Sequence[Mapping[str, Any]],
) -> str | None:
    """Why ``key`` cannot depend on ``upstream_key`` (dimensions in manifest form), or None if it can."""
    if not dimensions or not upstream_dimensions or _shape(dimensions) == _shape(upstream_dimensions):
        return None
    return (
        f"asset {key} is partitioned by {describe_dimensions(dimensions)} but its upstream "
        f"{upstream_key} is partitioned by {describe_dimensions(upstream_dimensions)}: a run "
        "materializes one partition key for all its assets, so both must be partitioned alike"
    )
