"""What an asset receives for an upstream its run does not materialize: the upstream's last success.

A run plans only its selection, so ``servo run demo.b`` dispatches b alone; its upstream a was
materialized by an earlier run, and b should see that output, as it would had a run beside it. The
answer comes from the published projection (readers never read the ledger): the most recent runs are
searched, newest first, for a SUCCEEDED task of the upstream asset for the same partition (or an
unpartitioned one). The search is bounded, so an upstream last materialized long ago, or never, is
simply absent and the worker tells the asset so in plain words.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from servo.core.rows import TaskRow
from servo.core.state import RunPartition
from servo.core.states import TaskState
from servo.services.context import ServiceContext
from servo.services.read_model import Snapshot

MAX_RUNS_SEARCHED = 100
_PAGE = 50


def _deployed_upstreams(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, code_version: str | None
) -> Mapping[str, tuple[str, ...]]:
    """Asset key -> its upstream keys, as deployed with ``code_version`` (remembered per version: the
    version is a digest of the code, so one version always has one graph)."""
    from servo.services.manifests import load_current_manifest

    key = f"upstreams:{tenant_id}/{workspace_id}/{code_version}"
    cached = ctx.cache.get(key)
    if isinstance(cached, dict):
        return cached
    manifest = load_current_manifest(ctx, tenant_id, workspace_id)
    graph = {k: spec.upstream for k, spec in manifest.assets.items()} if manifest is not None else {}
    if manifest is not None and manifest.code_version_id == code_version:
        ctx.cache[key] = graph
    return graph


def _matches(task: TaskRow, wanted: set[str], partition_key: str) -> bool:
    return (
        task.asset_key in wanted
        and task.state == TaskState.SUCCEEDED.value
        and (task.partition_key or "") in (partition_key, "")
    )


def last_materializations(
    snapshot: Snapshot, assets: Iterable[str], partition_key: str, *, max_runs: int = MAX_RUNS_SEARCHED
) -> dict[str, dict[str, Any]]:
    """Asset key -> the reported output of its most recent successful materialization for
    ``partition_key`` (or unpartitioned), among the ``max_runs`` most recently triggered runs."""
    wanted = set(assets)
    best: dict[str, TaskRow] = {}
    cursor: tuple[int, str] | None = None
    searched = 0
    # Page by page, newest runs first; within what was read, the latest completion wins (runs
    # triggered close together may finish in either order).
    while wanted - best.keys() and searched < max_runs:
        runs, cursor = snapshot.list_runs(limit=min(_PAGE, max_runs - searched), cursor=cursor)
        for run in runs:
            searched += 1
            view = snapshot.get_run(run.run_id)
            for task in view.tasks if view is not None else ():
                if _matches(task, wanted, partition_key) and task.asset_key is not None:
                    other = best.get(task.asset_key)
                    if other is None or _recency(task) > _recency(other):
                        best[task.asset_key] = task
        if cursor is None:
            break
    return {key: json.loads(task.output_json or "{}") for key, task in best.items()}


def _recency(task: TaskRow) -> tuple[int, str]:
    return task.completed_at or 0, task.run_id


def outside_upstream_outputs(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, part: RunPartition, task: TaskRow
) -> dict[str, dict[str, Any]]:
    """The outputs of ``task``'s upstream assets that its run does not materialize (see the module)."""
    run = part.run
    if run is None or task.asset_key is None:
        return {}
    upstream = _deployed_upstreams(ctx, tenant_id, workspace_id, run.code_version).get(task.asset_key, ())
    # A run's task key is its asset's key (one partition per run), so membership is a dict lookup.
    outside = [u for u in upstream if u not in part.tasks]
    if not outside:
        return {}
    # The upstream's last run may have ended moments ago, its end still held back by this process's
    # group commit (a trigger that dispatches its roots itself does not wait for a publish first).
    ctx.settle(tenant_id, workspace_id)
    snapshot = ctx.last_seen_snapshot(tenant_id, workspace_id) or ctx.snapshot(tenant_id, workspace_id)
    return last_materializations(snapshot, outside, task.partition_key or "")
