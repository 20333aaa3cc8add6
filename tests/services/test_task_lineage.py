"""Item 1 of issue 20: a task carries its asset's code version (TaskDef.code_version, from the deployed
transformFingerprint) and, once it succeeds, the worker's reported output and one execution lineage
ref naming the exact attempt (automation §5, §6.5; L1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from servo.core._event_fields import taskdef_from_json, taskdef_to_json
from servo.core.events import PlanCreated, TaskFinished, decode_event
from servo.core.partition_status import execution_lineage_ref
from servo.core.taskdef import TaskDef
from servo.services.callbacks import task_completed, task_started
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.read_model import load_snapshot
from servo.services.runs import get_run
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context

WS = "prod"
OUTPUT = {
    "materializationId": "mat-1",
    "rowCount": 7,
    "outputPath": "gs://b/t/date=2025-01-15",
    "deltaTable": "lake.events",
    "deltaVersion": 42,
    "deltaPartition": "date=2025-01-15",
}


def _fingerprinted(key: str, fingerprint: str | None) -> dict[str, Any]:
    body = asset(key)
    if fingerprint is not None:
        body["transformFingerprint"] = fingerprint
    return body


def _run_one(tmp_path: Path, fingerprint: str | None) -> tuple[ServiceContext, str]:
    ctx, _, queue = make_context(tmp_path)
    body = json.dumps(manifest(_fingerprinted("ns.a", fingerprint))).encode()
    assert deploy_manifest(ctx, "default", WS, body, None)[0] == 201
    run_id = trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})[1]["runId"]
    envelope = json.loads(queue.take()[0].body)
    headers = {"authorization": f"Bearer {envelope['taskToken']}"}
    ids = {"attempt": envelope["attempt"], "attemptId": envelope["attemptId"], "workerId": "w1"}
    task_started(ctx, envelope["taskId"], headers, ids)
    task_completed(ctx, envelope["taskId"], headers, {**ids, "outcome": "SUCCEEDED", "output": OUTPUT})
    return ctx, run_id


def _events(ctx: ServiceContext) -> list[Any]:
    store = ctx.workspace_store("default", WS)
    return [decode_event(store.get(m.name).data) for m in store.list("ledger/orchestration/")]  # type: ignore[union-attr]


def test_taskdef_code_version_round_trips_and_older_plans_without_it_still_decode() -> None:
    task = TaskDef(key="ns.a", asset_key="ns.a", code_version="f1")
    assert taskdef_from_json(taskdef_to_json(task)) == task
    older = taskdef_to_json(TaskDef(key="ns.a", asset_key="ns.a"))
    assert "code_version" not in older
    assert taskdef_from_json(older).code_version is None


def test_the_plan_task_row_and_completion_carry_the_assets_code_version(tmp_path: Path) -> None:
    ctx, run_id = _run_one(tmp_path, "f1")
    events = _events(ctx)
    plan = next(e.data for e in events if isinstance(e.data, PlanCreated))
    assert [t.code_version for t in plan.tasks] == ["f1"]
    finished = next(e.data for e in events if isinstance(e.data, TaskFinished))
    assert (finished.asset_key, finished.code_version) == ("ns.a", "f1")
    task = load_snapshot(ctx.workspace_store("default", WS)).partition(run_id).tasks["ns.a"]  # type: ignore[union-attr]
    assert task.code_version == "f1"
    assert get_run(ctx, "default", WS, run_id)["tasks"][0]["codeVersion"] == "f1"


def test_a_success_fills_the_lineage_ref_naming_the_exact_attempt(tmp_path: Path) -> None:
    """L1: deltaVersion 42, deltaPartition date=2025-01-15 -> one lineage ref on the task row."""
    ctx, run_id = _run_one(tmp_path, "f1")
    task = load_snapshot(ctx.workspace_store("default", WS)).partition(run_id).tasks["ns.a"]  # type: ignore[union-attr]
    expected = execution_lineage_ref(run_id, "ns.a", 1, "mat-1", OUTPUT)
    assert task.execution_lineage_ref == expected
    assert json.loads(expected) == {
        "runId": run_id,
        "taskKey": "ns.a",
        "attempt": 1,
        "materializationId": "mat-1",
        "deltaTable": "lake.events",
        "deltaVersion": 42,
        "deltaPartition": "date=2025-01-15",
    }
    assert (task.materialization_id, task.delta_version, task.delta_partition) == (
        "mat-1",
        42,
        "date=2025-01-15",
    )
    shown = get_run(ctx, "default", WS, run_id)["tasks"][0]
    assert shown["executionLineageRef"] == expected
    assert shown["output"]["rowCount"] == 7 and shown["output"]["outputPath"] == OUTPUT["outputPath"]


def test_a_manifest_without_fingerprints_still_runs_with_no_code_version(tmp_path: Path) -> None:
    ctx, run_id = _run_one(tmp_path, None)
    task = load_snapshot(ctx.workspace_store("default", WS)).partition(run_id).tasks["ns.a"]  # type: ignore[union-attr]
    assert task.state == "SUCCEEDED"
    assert task.code_version is None
    assert "codeVersion" not in get_run(ctx, "default", WS, run_id)["tasks"][0]
