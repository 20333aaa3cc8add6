"""An asset run without its upstream receives the upstream's last successful output, from the
published projection, in its dispatch payload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from servo.services.callbacks import task_completed, task_started
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import RecordingQueue, make_context

WS = "prod"


def _materialize(ctx: ServiceContext, queue: RecordingQueue, key: str, rows: int | None) -> dict[str, Any]:
    """Trigger ``key`` alone and complete its attempt (SUCCEEDED with ``rows``, or FAILED when None)."""
    trigger_run(ctx, "default", WS, {"selection": [key]})
    envelope = json.loads(queue.take()[0].body)
    headers = {"authorization": f"Bearer {envelope['taskToken']}"}
    ids = {"attempt": envelope["attempt"], "attemptId": envelope["attemptId"], "workerId": "w1"}
    task_started(ctx, envelope["taskId"], headers, ids)
    if rows is None:
        error = {"category": "USER_CODE", "message": "boom", "retryable": False}
        body = {**ids, "outcome": "FAILED", "error": error}
    else:
        output = {"materializationId": f"m{rows}", "rowCount": rows, "metadata": {"rows": rows}}
        body = {**ids, "outcome": "SUCCEEDED", "output": output}
    task_completed(ctx, envelope["taskId"], headers, body)
    return dict(envelope)


def _context(tmp_path: Path) -> tuple[ServiceContext, RecordingQueue]:
    ctx, _, queue = make_context(tmp_path)
    body = manifest(asset("ns.a"), asset("ns.b", "ns.a", maxRetries=0))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    return ctx, queue


def test_an_upstream_outside_the_run_is_its_last_successful_output(tmp_path: Path) -> None:
    ctx, queue = _context(tmp_path)
    _materialize(ctx, queue, "ns.a", 3)
    _materialize(ctx, queue, "ns.a", 5)
    _materialize(ctx, queue, "ns.a", None)  # a later failure does not hide the last success
    envelope = _materialize(ctx, queue, "ns.b", 1)
    assert envelope["payload"]["upstream"]["ns.a"]["metadata"] == {"rows": 5}


def test_an_upstream_never_materialized_is_absent(tmp_path: Path) -> None:
    ctx, queue = _context(tmp_path)
    envelope = _materialize(ctx, queue, "ns.b", 1)
    assert "upstream" not in envelope["payload"]
