"""What the worker's callbacks read: ``started`` checks the current head; ``logs`` and ``completed``,
which follow it within moments, may accept against the head this instance saw in the last second,
and refuse only what a fresh head refuses too."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from servo.services.callbacks import task_completed, task_started, upload_logs
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import RecordingQueue, make_context
from tests.support.stores import PointerReads

WS = "prod"


def _chain(tmp_path: Path, **settings: Any) -> tuple[ServiceContext, RecordingQueue]:
    ctx, _, queue = make_context(tmp_path, **settings)
    body = manifest(asset("ns.a"), asset("ns.b", "ns.a"))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    trigger_run(ctx, "default", WS, {"selection": ["ns.a"], "includeDownstream": True})
    return ctx, queue


def _call(envelope: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    headers = {"authorization": f"Bearer {envelope['taskToken']}"}
    ids = {"attempt": envelope["attempt"], "attemptId": envelope["attemptId"], "workerId": "w1"}
    return envelope["taskId"], headers, ids


def test_logs_and_completed_after_started_read_no_head(tmp_path: Path) -> None:
    ctx, queue = _chain(tmp_path)
    task_id, headers, ids = _call(json.loads(queue.take()[0].body))
    counting = PointerReads(ctx.store)
    quiet = replace(ctx, store=counting, after_ledger_write=None)  # no compaction in between
    task_started(quiet, task_id, headers, ids)
    assert counting.pointer_reads == 1
    upload_logs(quiet, task_id, headers, {"attempt": ids["attempt"], "stdout": "hi", "stderr": ""})
    task_completed(quiet, task_id, headers, {**ids, "outcome": "SUCCEEDED"})
    assert counting.pointer_reads == 1


def test_what_a_recent_head_refuses_is_checked_against_a_fresh_one(tmp_path: Path) -> None:
    # This instance last saw the run before ns.b was dispatched; another instance has since
    # published the dispatch. The recent head would refuse ns.b's token: the fresh one accepts it.
    ctx, queue = _chain(tmp_path)
    stale = replace(ctx, cache={})
    a_id, a_headers, a_ids = _call(json.loads(queue.take()[0].body))
    task_started(stale, a_id, a_headers, a_ids)  # warms this instance's head: ns.b BLOCKED
    task_started(ctx, a_id, a_headers, a_ids)
    task_completed(ctx, a_id, a_headers, {**a_ids, "outcome": "SUCCEEDED"})
    b_id, b_headers, b_ids = _call(json.loads(queue.take()[0].body))
    assert b_ids["attempt"] == 1
    reply = task_completed(stale, b_id, b_headers, {**b_ids, "outcome": "SUCCEEDED"})
    assert reply["acknowledged"] is True


def test_a_recent_head_is_never_trusted_when_the_setting_is_zero(tmp_path: Path) -> None:
    ctx, queue = _chain(tmp_path, callback_view_max_age_ms=0)
    task_id, headers, ids = _call(json.loads(queue.take()[0].body))
    counting = PointerReads(ctx.store)
    quiet = replace(ctx, store=counting, after_ledger_write=None)
    task_started(quiet, task_id, headers, ids)
    task_completed(quiet, task_id, headers, {**ids, "outcome": "SUCCEEDED"})
    assert counting.pointer_reads == 2


def test_the_recent_head_age_is_a_setting() -> None:
    from servo.settings import Settings

    assert Settings.from_env({}).callback_view_max_age_ms == 1000
    assert Settings.from_env({"SERVO_CALLBACK_VIEW_MAX_AGE_MS": "0"}).callback_view_max_age_ms == 0
