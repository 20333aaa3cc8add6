"""What a running or failed task tells its user: progress from heartbeats (without flooding the ledger
when the worker beats often), the traceback of a failure, and output stored by chunks while it runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from servo.core.errors import CallbackRejected, NotFound
from servo.services.callbacks import task_completed, task_heartbeat, task_started, upload_logs
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.runs import get_run, run_logs
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import FakeClock, make_context

WS = "prod"


def _started(tmp_path: Path) -> tuple[ServiceContext, FakeClock, str, str, dict[str, str], dict[str, Any]]:
    ctx, clock, queue = make_context(tmp_path)
    assert deploy_manifest(ctx, "default", WS, json.dumps(manifest(asset("ns.a"))).encode(), None)[0] == 201
    run_id = trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})[1]["runId"]
    envelope = json.loads(queue.take()[0].body)
    headers = {"authorization": f"Bearer {envelope['taskToken']}"}
    ids = {"attempt": envelope["attempt"], "attemptId": envelope["attemptId"], "workerId": "w1"}
    task_started(ctx, envelope["taskId"], headers, ids)
    return ctx, clock, run_id, envelope["taskId"], headers, ids


def _heartbeats(ctx: ServiceContext) -> int:
    store = ctx.workspace_store("default", WS)
    bodies = [store.get(m.name) for m in store.list("ledger/orchestration/")]
    return sum(1 for b in bodies if b is not None and b"TaskHeartbeat" in b.data)


def _task(ctx: ServiceContext, run_id: str) -> dict[str, Any]:
    return dict(get_run(ctx, "default", WS, run_id)["tasks"][0])


def test_progress_shows_in_the_run_and_frequent_beats_write_only_news(tmp_path: Path) -> None:
    ctx, clock, run_id, task_id, headers, ids = _started(tmp_path)
    task_heartbeat(ctx, task_id, headers, {**ids, "message": "loading", "progressPct": 10})
    task = _task(ctx, run_id)
    assert (task["progressMessage"], task["progressPct"]) == ("loading", 10)
    for _ in range(5):  # a dev worker beats every second; the same progress is not news
        clock.advance(1000)
        reply = task_heartbeat(ctx, task_id, headers, {**ids, "message": "loading", "progressPct": 10})
        assert reply["shouldCancel"] is False
    assert _heartbeats(ctx) == 1
    clock.advance(1000)
    task_heartbeat(ctx, task_id, headers, {**ids, "message": "writing", "progressPct": 60})
    assert _heartbeats(ctx) == 2
    assert _task(ctx, run_id)["progressMessage"] == "writing"
    # After a tenth of the heartbeat timeout (90 s by default) a beat is recorded anyway: liveness.
    clock.advance(9_000)
    task_heartbeat(ctx, task_id, headers, {**ids, "message": "writing", "progressPct": 60})
    assert _heartbeats(ctx) == 3


def test_a_failed_tasks_traceback_is_in_the_run_and_progress_is_gone(tmp_path: Path) -> None:
    ctx, _, run_id, task_id, headers, ids = _started(tmp_path)
    task_heartbeat(ctx, task_id, headers, {**ids, "message": "half", "progressPct": 50})
    trace = "Traceback (most recent call last):\n  File \"a.py\", line 3, in a\nKeyError: 'k'\n"
    error = {"category": "USER_CODE", "message": "KeyError: 'k'", "retryable": False, "stackTrace": trace}
    task_completed(ctx, task_id, headers, {**ids, "outcome": "FAILED", "error": error})
    task = _task(ctx, run_id)
    assert task["state"] == "FAILED"
    assert task["stackTrace"] == trace
    assert "progressMessage" not in task


def test_chunks_of_a_running_attempt_are_read_as_one_log(tmp_path: Path) -> None:
    ctx, _, run_id, task_id, headers, _ = _started(tmp_path)
    with pytest.raises(NotFound):
        run_logs(ctx, "default", WS, run_id, {})
    upload_logs(ctx, task_id, headers, {"attempt": 1, "seq": 0, "text": "first line\n"})
    upload_logs(ctx, task_id, headers, {"attempt": 1, "seq": 1, "text": "second line\n"})
    page, cursor = run_logs(ctx, "default", WS, run_id, {})
    assert page.decode() == f"--- logs/{run_id}/ns.a/attempt-1.log ---\nfirst line\nsecond line\n"
    assert cursor is None
    # A retried upload of a stored chunk changes nothing and says so.
    with pytest.raises(CallbackRejected) as refused:
        upload_logs(ctx, task_id, headers, {"attempt": 1, "seq": 1, "text": "other\n"})
    assert refused.value.http_status == 409
    # A page that ends inside an attempt: the next one repeats its header and carries on.
    first, cursor = run_logs(ctx, "default", WS, run_id, {"limit": "1"})
    assert first.decode().endswith("first line\n") and cursor is not None
    second, _ = run_logs(ctx, "default", WS, run_id, {"limit": "1", "cursor": cursor})
    assert second.decode() == f"--- logs/{run_id}/ns.a/attempt-1.log ---\nsecond line\n"


def test_output_is_stored_after_the_attempt_ended(tmp_path: Path) -> None:
    ctx, _, run_id, task_id, headers, ids = _started(tmp_path)
    error = {"category": "TIMEOUT", "message": "attempt exceeded its timeout", "retryable": False}
    task_completed(ctx, task_id, headers, {**ids, "outcome": "FAILED", "error": error})
    upload_logs(ctx, task_id, headers, {"attempt": 1, "seq": 0, "text": "late words\n"})
    assert b"late words" in run_logs(ctx, "default", WS, run_id, {})[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"attempt": 1, "seq": -1, "text": "x"}, "seq must be"),
        ({"attempt": 1, "seq": 0}, "text must be a string"),
        ({"attempt": 1, "seq": 0, "text": "x" * (1024 * 1024 + 1)}, "at most"),
        # The document types stdout and stderr for both forms, so a chunk cannot carry them ill-typed.
        ({"attempt": 1, "seq": 0, "text": "x", "stderr": {}}, "stdout and stderr must be strings"),
    ],
)
def test_a_bad_chunk_is_refused(tmp_path: Path, body: dict[str, Any], message: str) -> None:
    ctx, _, _, task_id, headers, _ = _started(tmp_path)
    with pytest.raises(CallbackRejected) as refused:
        upload_logs(ctx, task_id, headers, body)
    assert refused.value.http_status == 400 and message in refused.value.message
