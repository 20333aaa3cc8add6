"""Reruns (automation §6.7): a new run of an ended run's tasks, through TriggerRun's creation path.

The chosen tasks are the parent's TaskDefs (``core.reruns``); the run is then created exactly as
TriggerRun creates one — run-key reservation, creation record, RunTriggered + PlanCreated — so a
repeat answers the same run and a crash between the writes is finished by the next same-key request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from servo.core._event_fields import taskdef_to_json
from servo.core.errors import InvalidInput, NotFound
from servo.core.fingerprints import request_fingerprint
from servo.core.ids import run_key_object_name, validate_path_component
from servo.core.keys import canonical_selection
from servo.core.planner import Plan
from servo.core.reruns import (
    FROM_FAILURE,
    SUBSET,
    chosen_tasks,
    default_run_key,
    rerun_fields,
    rerun_labels,
)
from servo.core.states import public_run_state
from servo.core.taskdef import TaskDef
from servo.core.timefmt import format_timestamp
from servo.services.context import ServiceContext
from servo.services.manifests import load_current_manifest
from servo.services.run_creation import CreationRecord
from servo.services.runs import load_run
from servo.services.trigger import KeyClaim, answer_existing, create_run
from servo.services.trigger_request import parse_labels, parse_run_key

_MODES = {"fromFailure": FROM_FAILURE, "subset": SUBSET}


def _bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be a boolean")
    return value


def _parse(body: Mapping[str, Any]) -> tuple[str, tuple[str, ...], bool, bool, str | None, dict[str, str]]:
    mode = body.get("mode")
    if not isinstance(mode, str) or mode not in _MODES:
        raise InvalidInput("mode must be fromFailure or subset")
    kind = _MODES[mode]
    selection = body.get("selection")
    selection = [] if selection is None else selection
    if not isinstance(selection, list) or not all(isinstance(s, str) for s in selection):
        raise InvalidInput("selection must be a list of asset keys")
    if len(selection) > 10_000:
        raise InvalidInput("selection may hold at most 10000 asset keys")
    up, down = _bool(body, "includeUpstream"), _bool(body, "includeDownstream")
    if kind == FROM_FAILURE and (selection or up or down):
        raise InvalidInput("mode fromFailure takes no selection, includeUpstream or includeDownstream")
    if kind == SUBSET and not selection:
        raise InvalidInput("mode subset needs a selection of at least one asset key of the parent run")
    try:
        selection = canonical_selection(selection)  # ns/name and ns.name alike, as TriggerRun reads them
    except InvalidInput as exc:
        raise InvalidInput(f"invalid selection: {exc.message}") from None
    return kind, tuple(selection), up, down, parse_run_key(body.get("runKey")), parse_labels(body)


def _parent_plan(view: Any) -> tuple[TaskDef, ...]:
    deps: dict[str, list[str]] = {}
    for dep in view.deps:
        deps.setdefault(dep.downstream_task_key, []).append(dep.upstream_task_key)
    return tuple(
        TaskDef(
            key=t.task_key,
            depends_on=tuple(sorted(deps.get(t.task_key, ()), key=lambda s: s.encode())),
            asset_key=t.asset_key,
            partition_key=t.partition_key,
            max_attempts=t.max_attempts,
            heartbeat_timeout_sec=t.heartbeat_timeout_sec,
            requires_visible_output=bool(t.requires_visible_output),
            timeout_seconds=t.timeout_seconds,
            code_version=t.code_version,
        )
        for t in view.tasks.values()
    )


def rerun_run(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    parent_run_id: str,
    body: Mapping[str, Any],
    *,
    traceparent: str | None = None,
) -> tuple[int, dict[str, Any]]:
    kind, selection, up, down, run_key, request_labels = _parse(body)
    validate_path_component(parent_run_id, "run id", 64)
    view = load_run(ctx, tenant_id, workspace_id, parent_run_id)
    if view is None or view.run is None:
        raise NotFound(f"run {parent_run_id} not found in workspace '{workspace_id}'")
    parent_state = public_run_state(view.run, view.tasks.values())
    tasks = chosen_tasks(
        parent_state,
        _parent_plan(view),
        {k: t.state for k, t in view.tasks.items()},
        kind,
        selection,
        include_upstream=up,
        include_downstream=down,
    )
    keys = tuple(t.key for t in tasks)
    partition_key = tasks[0].partition_key
    parent_labels = json.loads(view.run.labels) if view.run.labels else {}
    labels = rerun_labels(parent_run_id, parent_labels, request_labels, kind)
    run_key = run_key or default_run_key(parent_run_id, kind, keys, partition_key)
    fingerprint = request_fingerprint(keys, False, False, partition_key, labels)
    claim = KeyClaim(run_key, fingerprint, frozenset({fingerprint}))
    lineage = rerun_fields(labels)

    store = ctx.workspace_store(tenant_id, workspace_id)
    existing = store.get(run_key_object_name(run_key))
    if existing is not None:
        status, answer = answer_existing(ctx, tenant_id, workspace_id, claim, existing.data)
        return status, {**answer, **lineage}

    manifest = load_current_manifest(ctx, tenant_id, workspace_id)
    if manifest is None:
        raise InvalidInput(f"no manifest deployed in workspace '{workspace_id}'; run `servo deploy` first")
    gone = sorted(t.asset_key for t in tasks if t.asset_key and t.asset_key not in manifest.assets)
    if gone:
        raise InvalidInput(
            f"assets no longer deployed: {', '.join(gone)}; deploy them again to rerun",
            details={"undeployed": gone},
        )
    now = ctx.clock_ms()
    record = CreationRecord(
        run_id=ctx.ids.new(now),
        plan_id=ctx.ids.new(now),
        event_id=ctx.ids.new(now),
        plan_event_id=ctx.ids.new(now),
        created_at=format_timestamp(now),
        manifest_id=manifest.manifest_id,
        roots=keys,
        include_upstream=False,
        include_downstream=False,
        partition_key=partition_key,
        run_key=run_key,
        labels=labels,
        timeout_seconds=None,
        traceparent=traceparent,
        heartbeat_timeout_sec=ctx.settings.heartbeat_timeout_sec,
        trigger={"type": "rerun", "rerun": {"parent_run_id": parent_run_id, "kind": kind}},
        tasks=tuple(taskdef_to_json(t) for t in tasks),
    )
    the_plan = Plan(root_assets=keys, tasks=tasks, fingerprint="")
    status, answer = create_run(ctx, tenant_id, workspace_id, record, manifest, the_plan, claim, fingerprint)
    return status, {**answer, **lineage}
