"""The embedded stack's controller pass: it acts on what the group commit just published."""

from __future__ import annotations

import json
import threading
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from servo.dev.embedded import InlineCompactor
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context

WS = "prod"


def test_the_controller_pass_reads_no_head_in_the_one_process_that_publishes(tmp_path: Path) -> None:
    # The embedded stack is the only publisher of its state: the head its group commit just wrote
    # is the head, so reading it back before each controller pass would only pay a read.
    ctx, _, queue = make_context(tmp_path, compact=False)
    body = manifest(asset("ns.a"), asset("ns.b", "ns.a"))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    effects_reads: list[str] = []

    class Spy(ServiceContext):
        def snapshot(self, tenant_id: str, workspace_id: str, **kw: Any) -> Any:
            if threading.current_thread().name == "servo-effects":
                effects_reads.append(workspace_id)
            return super().snapshot(tenant_id, workspace_id, **kw)

    inline = InlineCompactor(window_ms=0)
    try:
        spy = Spy(**{f.name: getattr(ctx, f.name) for f in fields(ctx)})
        spy = replace(spy, after_ledger_write=inline.hook)
        trigger_run(spy, "default", WS, {"selection": ["ns.a"], "includeDownstream": True})
        assert inline.wait_idle(30)
        assert len(queue.take()) == 1  # ns.a dispatched; ns.b waits for it
        assert effects_reads == []
    finally:
        inline.stop()


def test_a_sensor_results_runs_start_on_the_effects_thread_without_a_sweep(tmp_path: Path) -> None:
    # automation §6.3: the callback only records the result; the act phase after the group commit's
    # publish submits its run requests, and (§6.2) requests the next poll for one interval later.
    from servo.services.sensor_sweep import sweep_sensors

    from tests.services.sensor_support import SECOND, T, W, deploy, evaluations, poll, report, tasks
    from tests.support.context import T0

    ctx, _, queue = make_context(tmp_path, compact=False)
    deploy(ctx, poll(defaultEnabled=True))
    sweep_sensors(ctx, T, W)
    [task] = tasks(queue)
    inline = InlineCompactor(window_ms=0)
    try:
        ctx = replace(ctx, after_ledger_write=inline.hook)
        report(ctx, task, status="TRIGGERED", runRequests=[{"runKey": "a.csv"}, {"runKey": "b.csv"}])
        assert inline.wait_idle(30)
        [evaluation] = evaluations(ctx, status="TRIGGERED")
        assert [r["status"] for r in evaluation["runRequests"]] == ["CREATED", "CREATED"]
        assert len({r["runId"] for r in evaluation["runRequests"]}) == 2
        [nxt] = tasks(queue)
        assert nxt["evaluationId"] == "files:v1:1" and nxt["scheduleTimeMs"] == T0 + 30 * SECOND
    finally:
        inline.stop()
