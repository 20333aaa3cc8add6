"""Is a set of asset definitions deployable? Unknown deps, duplicate keys, cycles and partitions that
cannot run together, each at file:line."""

from __future__ import annotations

from collections.abc import Iterable

from servo.core.partition_compat import partition_mismatch
from servo.core.planner import AssetGraph, find_cycle
from servo.sdk._asset import AssetDefinition, definition_of
from servo.sdk._errors import ManifestValidationError


def validate_assets(assets: Iterable[object]) -> None:
    """Check that the assets (definitions or @asset functions) form a deployable graph.

    Raises:
        ManifestValidationError: lists every problem found, each starting with ``file:line``; a cycle
            is named in data-flow order (``a.x -> a.y -> a.x``).
    """
    problems: list[str] = []
    by_key: dict[str, AssetDefinition] = {}
    for item in assets:
        definition = definition_of(item)
        key = str(definition.key)
        first = by_key.get(key)
        if first is not None and first != definition:
            problems.append(f"{definition.code}: duplicate asset key {key} (first defined at {first.code})")
            continue
        by_key[key] = definition
    for key, definition in sorted(by_key.items()):
        for upstream in definition.upstream_keys:
            if upstream not in by_key:
                problems.append(f"{definition.code}: asset {key} depends on unknown asset {upstream}")
    for key, definition in sorted(by_key.items()):
        for upstream in definition.upstream_keys:
            other = by_key.get(upstream)
            if other is None:
                continue
            mismatch = partition_mismatch(
                key,
                [d.to_manifest() for d in definition.partitions],
                upstream,
                [d.to_manifest() for d in other.partitions],
            )
            if mismatch:
                problems.append(f"{definition.code}: {mismatch}")
    cycle = find_cycle(AssetGraph.from_edges({k: d.upstream_keys for k, d in by_key.items()}))
    if cycle:
        where = by_key[cycle[0]].code
        problems.append(f"{where}: dependency cycle: {' -> '.join(cycle)}")
    if problems:
        raise ManifestValidationError(
            "the asset graph is not deployable:\n  " + "\n  ".join(problems),
            details={"problems": problems, "cycle": cycle or []},
        )
