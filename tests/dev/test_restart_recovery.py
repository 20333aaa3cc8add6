"""`servo dev` restarted on its data directory (issue 15 item 22, issue 17 item 6).

The embedded stack keeps its queue in memory and runs its worker in its own process: whatever it had
enqueued, and whatever its worker was running, died with it. On start it re-drives at once the
dispatches no worker started (not after the sweep's 10-minute repair) and reports the attempts its
worker was running as lost (not after the 90-s heartbeat limit), with the reason in the run's view.
Here the previous process is a context on the same data directory whose queue records and drops.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests
from servo.dev.embedded import EmbeddedStack
from servo.sdk import asset
from servo.services.callbacks import task_started
from servo.services.manifests import deploy_manifest
from servo.services.trigger import trigger_run
from servo.worker import WorkerApp, serve_app

from tests.functions.test_deploy_function import asset as manifest_asset
from tests.functions.test_deploy_function import manifest
from tests.support.context import inline_hook, make_context

SECRET = "restart-dispatch-secret"
WS = "dev"


@asset(namespace="r")
def quick(ctx: Any) -> dict[str, Any]:
    return {"row_count": 1}


def _previous_process(data_dir: Path, selections: list[list[str]]) -> tuple[Any, list[dict[str, Any]]]:
    """Deploy and trigger as the dead process did; its queue's deliveries never happened."""
    ctx, _, queue = make_context(data_dir)
    ctx = replace(ctx, clock_ms=lambda: int(time.time() * 1000), after_ledger_write=inline_hook)
    body = manifest(*(manifest_asset(f"r.{n}", maxRetries=2) for n in ("quick", "other")))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    for selection in selections:
        assert trigger_run(ctx, "default", WS, {"selection": selection})[0] == 201
    return ctx, [json.loads(t.body) for t in queue.take()]


def _restart(data_dir: Path) -> tuple[EmbeddedStack, Any]:
    worker = serve_app(
        WorkerApp({"r.quick": quick, "r.other": quick}, dispatch_secret=SECRET, worker_id="servo-dev-worker")
    )
    stack = EmbeddedStack(
        data_dir,
        worker_url=f"{worker.url}/dispatch",
        sweep_interval_s=3600,  # no sweep tick: the start itself must recover
        settings_overrides={"dispatch_secret": SECRET},
        owns_worker=True,
    )
    return stack.start(), worker


def _wait(api: str, run_id: str, done: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = dict(requests.get(f"{api}/v1/workspaces/{WS}/runs/{run_id}", timeout=10).json())
        if done(run):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def _wait_state(api: str, run_id: str, state: str, timeout: float = 20) -> dict[str, Any]:
    return _wait(api, run_id, lambda r: r["state"] == state, timeout)


def _run_ids(ctx: Any) -> list[str]:
    return sorted(ctx.snapshot("default", WS).active_run_ids())


def test_dispatches_lost_with_the_queue_are_redriven_at_start(tmp_path: Path) -> None:
    ctx, envelopes = _previous_process(tmp_path, [["r.quick"], ["r.other"]])
    assert len(envelopes) == 2
    run_ids = _run_ids(ctx)
    stack, worker = _restart(tmp_path)
    try:
        for run_id in run_ids:
            _wait_state(stack.api_url, run_id, "SUCCEEDED")
    finally:
        stack.stop()
        worker.stop()


def test_a_request_whose_acknowledgement_was_deferred_is_redriven_at_start(tmp_path: Path) -> None:
    # The local stacks record a dispatch by its request alone (settings.defer_dispatch_ack): a process
    # that died before its next pass leaves the row PENDING, and its queue died with it.
    from servo.services.orchestrate import act_on, compact_workspace

    ctx, _, queue = make_context(tmp_path, compact=False)
    ctx = replace(ctx, clock_ms=lambda: int(time.time() * 1000))
    body = manifest(manifest_asset("r.quick"))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    assert trigger_run(ctx, "default", WS, {"selection": ["r.quick"]})[0] == 201
    _, _, _, changed = compact_workspace(ctx, "default", WS)
    assert act_on(ctx, "default", WS, changed) == 1 and len(queue.take()) == 1
    compact_workspace(ctx, "default", WS)
    (run_id,) = _run_ids(ctx)
    part = ctx.snapshot("default", WS).partition(run_id)
    assert part is not None and [r.status for r in part.outbox.values()] == ["PENDING"]
    stack, worker = _restart(tmp_path)
    try:
        _wait_state(stack.api_url, run_id, "SUCCEEDED")
    finally:
        stack.stop()
        worker.stop()


def test_attempts_the_dead_worker_was_running_are_reported_lost_at_start(tmp_path: Path) -> None:
    ctx, (env,) = _previous_process(tmp_path, [["r.quick"]])
    headers = {"authorization": f"Bearer {env['taskToken']}"}
    ids = {"attempt": 1, "attemptId": env["attemptId"], "workerId": "servo-dev-worker", "executionId": "old"}
    task_started(ctx, env["taskId"], headers, ids)
    (run_id,) = _run_ids(ctx)
    stack, worker = _restart(tmp_path)
    try:
        # At once, not after the heartbeat limit: the attempt is failed and its retry waits its backoff,
        # with the reason in the run's view (what `servo status` shows).
        run = _wait(stack.api_url, run_id, lambda r: r["tasks"][0]["state"] != "RUNNING", timeout=4)
        (task,) = run["tasks"]
        assert (task["state"], task["attempt"], task["errorCategory"]) == ("PENDING", 1, "INFRASTRUCTURE"), (
            task
        )
        assert "WORKER_LOST" in task["errorMessage"] and "restarted" in task["errorMessage"]
        run = _wait_state(stack.api_url, run_id, "SUCCEEDED")
        assert run["tasks"][0]["attempt"] == 2
    finally:
        stack.stop()
        worker.stop()


def test_only_what_the_previous_process_left_is_repaired(tmp_path: Path) -> None:
    # The API serves while the start-up recovery runs: a dispatch this process enqueued, or an attempt
    # its own worker started, is live and must be left alone.
    from servo.dev.recovery import restart_decisions

    ctx, (env,) = _previous_process(tmp_path, [["r.quick"]])
    (run_id,) = _run_ids(ctx)

    def decisions(started_at_ms: int) -> list[str]:
        part = ctx.snapshot("default", WS).partition(run_id)
        assert part is not None
        return [
            type(d).__name__ for d in restart_decisions(part, owns_worker=True, started_at_ms=started_at_ms)
        ]

    later, earlier = int(time.time() * 1000) + 60_000, 0
    assert decisions(later) == ["EnqueueDispatch"] and decisions(earlier) == []
    headers = {"authorization": f"Bearer {env['taskToken']}"}
    ids = {"attempt": 1, "attemptId": env["attemptId"], "workerId": "servo-dev-worker", "executionId": "x"}
    task_started(ctx, env["taskId"], headers, ids)
    assert decisions(later) == ["FailAttempt"] and decisions(earlier) == []
