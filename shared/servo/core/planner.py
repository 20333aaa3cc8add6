"""The planner: an explicit asset selection -> the tasks of one run (behavior §3).

Selection is explicit (no auto-materialize): the plan holds the selected roots, plus their transitive
upstreams only when asked, plus their transitive downstreams only when asked. Selecting {A} of A->B->C
therefore never plans B or C, which is the M1 "uncheatable" smoke. Each planned task depends only on its
*planned* upstreams, so an unplanned upstream never blocks a run.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from servo.core.errors import InvalidAssetKey, InvalidInput, PlanError
from servo.core.fingerprints import DEFAULT_TIMEOUT_MS, PlannedTaskSpec, plan_fingerprint
from servo.core.keys import MAX_SELECTION_ITEMS, AssetKey, planner_task_key
from servo.core.partition_keys import require_canonical_partition_key
from servo.core.retry import DEFAULT_MAX_RETRIES
from servo.core.taskdef import DEFAULT_HEARTBEAT_TIMEOUT_SEC, TaskDef

MAX_SELECTION = MAX_SELECTION_ITEMS


def _byte_sorted(keys: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(keys, key=lambda k: k.encode("utf-8")))


def _canonical(raw: object, where: str) -> str:
    try:
        return str(AssetKey.parse(raw))  # type: ignore[arg-type]
    except InvalidAssetKey as exc:
        raise PlanError(f"{exc.message} ({where})", details={"asset_key": raw}) from exc


def _positive_int(value: object, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f"{name} must be an integer ≥ {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """Per-asset execution policy from ``@asset`` (design §6): ``max_retries`` 2 means 3 attempts."""

    max_retries: int = DEFAULT_MAX_RETRIES
    timeout_seconds: int | None = None
    heartbeat_timeout_sec: int = DEFAULT_HEARTBEAT_TIMEOUT_SEC
    code_version: str | None = None  # the asset's transformFingerprint, recorded on its TaskDef

    def __post_init__(self) -> None:
        _positive_int(self.max_retries, "max_retries", minimum=0)
        if self.timeout_seconds is not None:
            _positive_int(self.timeout_seconds, "timeout_seconds", minimum=1)
        _positive_int(self.heartbeat_timeout_sec, "heartbeat_timeout_sec", minimum=1)


_DEFAULT_OPTIONS = TaskOptions()


@dataclass(frozen=True, slots=True)
class AssetGraph:
    """Deployed assets by canonical key (``ns.name``) with their upstream and downstream keys.

    Build it with :meth:`from_edges` or :meth:`from_manifest_assets`; both canonicalise keys and drop
    edges to assets the graph does not hold (behavior §3). Cycles are kept so :func:`find_cycle` can
    name them.
    """

    upstream: Mapping[str, tuple[str, ...]]
    downstream: Mapping[str, tuple[str, ...]] = field(compare=False)

    @classmethod
    def from_edges(cls, edges: Mapping[str, Iterable[str]]) -> AssetGraph:
        """Build from ``asset key -> upstream keys`` (either key spelling).

        Raises:
            PlanError: an invalid key, or one asset given twice under two spellings.
        """
        raw_upstream: dict[str, list[str]] = {}
        for raw_key, raw_deps in edges.items():
            key = _canonical(raw_key, "in the graph")
            if key in raw_upstream:
                raise PlanError(f"asset {key} appears twice in the graph", details={"asset_key": key})
            if isinstance(raw_deps, str | bytes):
                raise PlanError(f"upstream keys of {key} must be a list", details={"asset_key": key})
            raw_upstream[key] = [_canonical(dep, f"upstream of {key}") for dep in raw_deps]
        upstream = {
            key: _byte_sorted({d for d in deps if d in raw_upstream}) for key, deps in raw_upstream.items()
        }
        downstream: dict[str, set[str]] = {key: set() for key in upstream}
        for key, deps in upstream.items():
            for dep in deps:
                downstream[dep].add(key)
        return cls(
            upstream=MappingProxyType(upstream),
            downstream=MappingProxyType({key: _byte_sorted(v) for key, v in downstream.items()}),
        )

    @classmethod
    def from_manifest_assets(cls, assets: Iterable[Mapping[str, Any]]) -> AssetGraph:
        """Build from a deployed manifest's ``assets`` (user-surface §2).

        Each asset has ``key`` (``"ns.name"`` or ``{namespace, name}``) and ``dependencies``
        (``[{upstreamKey, …}]``, the upstream key in either form).

        Raises:
            PlanError: an asset or dependency without a readable key.
        """
        edges: dict[str, list[str]] = {}
        for asset in assets:
            key = _key_text(asset.get("key") if isinstance(asset, Mapping) else None, "asset key")
            if key in edges:
                raise PlanError(f"asset {key} appears twice in the graph", details={"asset_key": key})
            deps = asset.get("dependencies") or []
            if not isinstance(deps, list):
                raise PlanError(f"dependencies of {key} must be a list")
            edges[key] = [
                _key_text(dep.get("upstreamKey") if isinstance(dep, Mapping) else None, f"upstream of {key}")
                for dep in deps
            ]
        return cls.from_edges(edges)

    def __contains__(self, key: object) -> bool:
        return key in self.upstream


def _key_text(value: object, what: str) -> str:
    if isinstance(value, Mapping):
        namespace, name = value.get("namespace"), value.get("name")
        if isinstance(namespace, str) and isinstance(name, str):
            return _canonical(f"{namespace}.{name}", what)
    elif isinstance(value, str):
        return _canonical(value, what)
    raise PlanError(f"missing or malformed {what}: {value!r}")


def find_cycle(graph: AssetGraph) -> list[str] | None:
    """A concrete cycle in data-flow order, e.g. ``["a.x", "a.y", "a.x"]`` (a.y reads a.x), or None.

    Deterministic: nodes and edges are walked in byte order and the cycle starts at its smallest key.
    """
    done: set[str] = set()
    for start in _byte_sorted(graph.upstream):
        if start in done:
            continue
        # Iterative DFS along downstream edges; `path` mirrors the stack so a back edge yields the cycle.
        path: list[str] = [start]
        on_path = {start}
        stack = [iter(graph.downstream[start])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif nxt in on_path:
                cycle = path[path.index(nxt) :]
                first = cycle.index(min(cycle, key=lambda k: k.encode("utf-8")))
                cycle = cycle[first:] + cycle[:first]
                return [*cycle, cycle[0]]
            elif nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(graph.downstream[nxt]))
    return None


def _closure(start: Iterable[str], edges: Mapping[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    frontier = list(start)
    while frontier:
        for nxt in edges[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


@dataclass(frozen=True, slots=True)
class Plan:
    """The tasks of one run; ``fingerprint`` identifies the planned graph, not the run."""

    root_assets: tuple[str, ...]
    tasks: tuple[TaskDef, ...]
    fingerprint: str


def _canonical_selection(graph: AssetGraph, selection: Sequence[str]) -> tuple[str, ...]:
    if isinstance(selection, str | bytes) or not isinstance(selection, Sequence | set | frozenset):
        raise PlanError("selection must be a list of asset keys")
    if not selection:
        raise PlanError("selection must not be empty")
    if len(selection) > MAX_SELECTION:
        raise PlanError(
            f"selection has {len(selection)} items; at most {MAX_SELECTION} are allowed",
            details={"count": len(selection)},
        )
    roots = {_canonical(item, "in the selection") for item in selection}
    unknown = _byte_sorted(key for key in roots if key not in graph)
    if unknown:
        raise PlanError(unknown_keys_message(unknown, graph.upstream), details={"unknown": list(unknown)})
    return _byte_sorted(roots)


def unknown_keys_message(unknown: Sequence[str], known: Iterable[str]) -> str:
    """``unknown asset keys: a.x, b.y`` plus the deployed keys that look alike (a typo is the usual cause)."""
    candidates = list(known)
    close: list[str] = []
    for key in unknown:
        close.extend(k for k in _look_alikes(key, candidates) if k not in close)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown asset keys: {', '.join(unknown)}{hint}"


def _look_alikes(key: str, candidates: Sequence[str], limit: int = 3) -> list[str]:
    """Keys whose namespace and name each resemble ``key``'s: short names (``demo.x``) would otherwise
    resemble every sibling through the shared namespace alone."""
    namespace, _, name = key.rpartition(".")
    scored: list[tuple[float, str]] = []
    for candidate in candidates:
        other_namespace, _, other_name = candidate.rpartition(".")
        by_name = difflib.SequenceMatcher(None, name, other_name).ratio()
        by_namespace = difflib.SequenceMatcher(None, namespace, other_namespace).ratio()
        if by_name >= 0.6 and by_namespace >= 0.75:
            scored.append((-(by_name + by_namespace), candidate))
    return [candidate for _, candidate in sorted(scored)[:limit]]


def plan(
    graph: AssetGraph,
    selection: Sequence[str],
    *,
    tenant_id: str,
    workspace_id: str,
    include_upstream: bool = False,
    include_downstream: bool = False,
    partition_key: str | None = None,
    task_options: Mapping[str, TaskOptions] | None = None,
) -> Plan:
    """Plan a run of an explicit selection.

    Args:
        graph: the deployed asset graph.
        selection: asset keys, ``ns.name`` or ``ns/name``; order and duplicates do not matter.
        tenant_id: tenant, part of the plan fingerprint.
        workspace_id: workspace, part of the plan fingerprint.
        include_upstream: also plan every transitive upstream of the selection.
        include_downstream: also plan every transitive downstream of the selection.
        partition_key: the canonical partition key every task runs for (None or "" when unpartitioned).
        task_options: per-asset policy by asset key (either spelling); absent assets get the defaults.

    Returns:
        The plan: byte-sorted roots, tasks sorted by key, and the plan fingerprint.

    Raises:
        PlanError: empty/oversized selection, invalid or unknown keys, or a cycle in the graph.
        InvalidPartitionKey: a partition key that is not canonical.
    """
    roots = _canonical_selection(graph, selection)
    cycle = find_cycle(graph)
    if cycle is not None:
        raise PlanError(f"asset graph has a cycle: {' -> '.join(cycle)}", details={"cycle": cycle})
    pk = partition_key or None
    if pk is not None:
        require_canonical_partition_key(pk)
    options = {_canonical(key, "in task options"): opt for key, opt in (task_options or {}).items()}

    planned = set(roots)
    if include_upstream:
        planned |= _closure(roots, graph.upstream)
    if include_downstream:
        planned |= _closure(roots, graph.downstream)

    tasks: list[TaskDef] = []
    specs: list[PlannedTaskSpec] = []
    for key in _byte_sorted(planned):
        opt = options.get(key, _DEFAULT_OPTIONS)
        depends_on = tuple(dep for dep in graph.upstream[key] if dep in planned)
        tasks.append(
            TaskDef(
                key=key,
                depends_on=depends_on,
                asset_key=key,
                partition_key=pk,
                max_attempts=opt.max_retries + 1,
                heartbeat_timeout_sec=opt.heartbeat_timeout_sec,
                requires_visible_output=True,
                timeout_seconds=opt.timeout_seconds,
                code_version=opt.code_version,
            )
        )
        specs.append(
            PlannedTaskSpec(
                key=_planner_key(key, pk),
                upstream_keys=tuple(_planner_key(dep, pk) for dep in depends_on),
                timeout_ms=DEFAULT_TIMEOUT_MS if opt.timeout_seconds is None else opt.timeout_seconds * 1000,
            )
        )
    return Plan(
        root_assets=roots,
        tasks=tuple(tasks),
        fingerprint=plan_fingerprint(tenant_id, workspace_id, specs),
    )


def _planner_key(key: str, partition_key: str | None) -> str:
    return planner_task_key(AssetKey.parse(key), partition_key)
