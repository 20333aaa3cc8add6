"""Shared pieces of the sensor service tests: a workspace with assets, deploys of sensors, and playing
the worker's part (take the enqueued evaluation task, report a result with its token)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from servo.core.canonical_json import canonical_bytes
from servo.services import sensors
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.sensor_results import report_result

from tests.support.context import FakeClock, RecordingQueue, make_context
from tests.support.faults import FaultyStore

T, W = "acme", "prod"
SECOND = 1000
DAY = {"name": "date", "kind": "time", "granularity": "day", "start": "2027-01-01"}


def asset(key: str, *deps: str, partitioned: bool = False) -> dict[str, Any]:
    return {
        "key": key,
        "id": f"id-{key}",
        "dependencies": [{"upstreamKey": d} for d in deps],
        "partitioning": {"dimensions": [DAY] if partitioned else []},
    }


def poll(sid: str = "files", **fields: Any) -> dict[str, Any]:
    return {"id": sid, "kind": "POLL", "target": ["ns.a"], "minimumIntervalSeconds": 30, **fields}


def push(sid: str = "inbox", **fields: Any) -> dict[str, Any]:
    return {**poll(sid), "kind": "PUSH", **fields}


def run_status(sid: str = "on_failure", **fields: Any) -> dict[str, Any]:
    return {"id": sid, "kind": "RUN_STATUS", "runStatus": ["FAILED"], **fields}


def manifest(*entries: dict[str, Any], code: str = "cv1", partitioned: bool = False) -> dict[str, Any]:
    assets = [asset("ns.a", partitioned=partitioned), asset("ns.b", "ns.a", partitioned=partitioned)]
    return {"manifestVersion": "1.0", "codeVersionId": code, "assets": assets, "sensors": list(entries)}


def deploy(
    ctx: ServiceContext, *entries: dict[str, Any], key: str | None = None, **options: Any
) -> tuple[int, dict[str, Any]]:
    return deploy_manifest(ctx, T, W, canonical_bytes(manifest(*entries, **options)), key)


def show(ctx: ServiceContext, sid: str = "files") -> dict[str, Any]:
    return sensors.get_sensor(ctx, T, W, sid)


def evaluations(ctx: ServiceContext, sid: str = "files", **query: str) -> list[dict[str, Any]]:
    return sensors.list_evaluations(ctx, T, W, sid, query)["evaluations"]


def tasks(queue: RecordingQueue) -> list[dict[str, Any]]:
    """The evaluation tasks enqueued since the last call: their envelopes, with the task name and the
    time it is due (None: now)."""
    out = []
    for task in queue.take():
        if task.task_id.startswith("s_"):
            envelope = json.loads(task.body)
            due = {"taskName": task.task_id, "url": task.url, "scheduleTimeMs": task.schedule_time_ms}
            out.append({**envelope, **due})
    return out


def report(ctx: ServiceContext, envelope: dict[str, Any], **result: Any) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {envelope['evaluationToken']}"}
    return report_result(ctx, envelope["evaluationId"], headers, {"status": "SKIPPED", **result})


def ledger_names(ctx: ServiceContext) -> list[str]:
    return sorted(m.name for m in ctx.workspace_store(T, W).list("ledger/orchestration/"))


def fail_run(ctx: ServiceContext, queue: RecordingQueue, run_id: str) -> None:
    """Play the worker for every dispatched task of ``run_id``: it starts and fails (not retryable)."""
    from servo.services.callbacks import task_completed, task_started

    for _ in range(10):
        dispatched = [json.loads(t.body) for t in queue.take() if t.task_id.startswith("d_")]
        dispatched = [e for e in dispatched if e["runId"] == run_id]
        if not dispatched:
            return
        for envelope in dispatched:
            headers = {"authorization": f"Bearer {envelope['taskToken']}"}
            ids = {"attempt": envelope["attempt"], "attemptId": envelope["attemptId"], "workerId": "w1"}
            task_started(ctx, envelope["taskId"], headers, ids)
            error = {"category": "USER_CODE", "message": "boom", "retryable": False}
            task_completed(ctx, envelope["taskId"], headers, {**ids, "outcome": "FAILED", "error": error})


def poll_in_flight(
    root: Path,
) -> tuple[ServiceContext, FakeClock, RecordingQueue, FaultyStore, dict[str, Any]]:
    """A poll sensor with its first evaluation in flight (its task), on a store that can be made to
    crash; nothing compacts on its own (``compact_each`` plays the compactor function)."""
    from servo.services.sensor_sweep import sweep_sensors

    ctx, clock, queue = make_context(root, compact=False)
    deploy(ctx, poll(defaultEnabled=True))
    sweep_sensors(ctx, T, W)
    [task] = tasks(queue)
    faulty = FaultyStore(ctx.store)
    return replace(ctx, store=faulty), clock, queue, faulty, task


def compact_each(ctx: ServiceContext, names: list[str]) -> None:
    """The compactor function, once per finalize event of these ledger objects."""
    from servo.services.orchestrate import compact_and_act

    for name in names:
        compact_and_act(ctx, T, W, hint=[name])
