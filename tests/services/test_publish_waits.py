"""Who waits for the publish of its write, and whose write is urgent.

Trigger and cancel read back what they wrote (read-after-write); the worker's callbacks and the
controller's side effects never do, so they hand their objects over and return. Writes that only
record progress (a dispatch, a start, a heartbeat) are not urgent: their publish unblocks nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from servo.services.callbacks import task_completed, task_heartbeat, task_started
from servo.services.cancel import cancel_run
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import inline_hook, make_context

WS = "prod"
WORKER_FACTS = {"TaskStarted", "TaskHeartbeat", "TaskFinished"}
TRIGGER_EVENTS = {"RunTriggered", "PlanCreated"}


def _deployed(tmp_path: Path) -> tuple[ServiceContext, Any]:
    ctx, _, queue = make_context(tmp_path)
    body = manifest(asset("ns.a"), asset("ns.b"))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    return ctx, queue


def test_the_worker_and_the_controller_do_not_wait_trigger_and_cancel_do(tmp_path: Path) -> None:
    ctx, queue = _deployed(tmp_path)
    waits: dict[str, set[bool]] = {}
    urgency: dict[str, set[bool]] = {}

    def recording(
        c: ServiceContext,
        tenant: str,
        ws: str,
        names: Sequence[str],
        *,
        await_publish: bool,
        urgent: bool = True,
    ) -> None:
        store = c.workspace_store(tenant, ws)
        for name in names:
            found = store.get(name)
            assert found is not None
            waits.setdefault(json.loads(found.data)["event_type"], set()).add(await_publish)
            urgency.setdefault(json.loads(found.data)["event_type"], set()).add(urgent)
        inline_hook(c, tenant, ws, names, await_publish=await_publish, urgent=urgent)

    ctx = replace(ctx, after_ledger_write=recording)
    trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})
    (task,) = queue.take()
    env = json.loads(task.body)
    headers = {"authorization": f"Bearer {env['taskToken']}"}
    ids = {"attempt": env["attempt"], "attemptId": env["attemptId"], "workerId": "w1"}
    task_started(ctx, env["taskId"], headers, ids)
    task_heartbeat(ctx, env["taskId"], headers, ids)
    task_completed(ctx, env["taskId"], headers, {**ids, "outcome": "SUCCEEDED"})
    _, other = trigger_run(ctx, "default", WS, {"selection": ["ns.b"]})
    cancel_run(ctx, "default", WS, other["runId"], {})

    assert all(waits[t] == {False} for t in WORKER_FACTS)
    assert waits["DispatchRequested"] == waits["DispatchEnqueued"] == {False}  # the controller's side effects
    assert waits["RunCancelRequested"] == {True}
    assert all(waits[t] == {True} for t in TRIGGER_EVENTS)
    progress = {"TaskStarted", "TaskHeartbeat", "DispatchRequested", "DispatchEnqueued"}
    assert all(urgency[t] == {False} for t in progress)
    assert all(urgency[t] == {True} for t in set(urgency) - progress)
    assert {"TaskFinished", "RunCancelRequested", *TRIGGER_EVENTS} <= set(urgency)
