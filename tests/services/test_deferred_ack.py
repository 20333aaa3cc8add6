"""The local stacks' deferred dispatch acknowledgement (settings.defer_dispatch_ack; issue 21).

A dispatch the controller enqueued is recorded by DispatchRequested alone. The next pass that finds its
row still PENDING (the task not started) records the DispatchEnqueued, without enqueuing again when this
instance made the enqueue; a task that started first never gets one (the fold would reject it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from servo.core.keys import encode_task_id
from servo.dispatch import EnqueueOutcome, HttpTask
from servo.services.callbacks import task_started
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import act_on, compact_workspace
from servo.services.read_model import load_snapshot
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import RecordingQueue, make_context

WS = "prod"


@dataclass
class CountingQueue:
    """Counts every enqueue call, ALREADY_EXISTS answers included."""

    inner: RecordingQueue
    calls: list[str] = field(default_factory=list)

    def enqueue(self, queue: str, task: HttpTask) -> EnqueueOutcome:
        self.calls.append(task.task_id)
        return self.inner.enqueue(queue, task)


def _triggered(tmp_path: Path) -> tuple[ServiceContext, CountingQueue, str]:
    ctx, _, recording = make_context(tmp_path, compact=False)
    assert ctx.settings.defer_dispatch_ack  # the local stacks' default
    queue = CountingQueue(recording)
    ctx = replace(ctx, queue=queue)  # type: ignore[arg-type]
    body = manifest(asset("ns.a"))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    run_id = trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})[1]["runId"]
    _, _, _, changed = compact_workspace(ctx, "default", WS)
    assert act_on(ctx, "default", WS, changed) == 1  # DispatchRequested alone
    assert len(queue.calls) == 1
    return ctx, queue, run_id


def _ledger_types(ctx: ServiceContext) -> list[str]:
    prefix = f"default/{WS}/ledger/orchestration/"
    return [json.loads(ctx.store.get(m.name).data)["event_type"] for m in ctx.store.list(prefix)]  # type: ignore[union-attr]


def _outbox(ctx: ServiceContext, run_id: str) -> list[str]:
    part = load_snapshot(ctx.workspace_store("default", WS)).partition(run_id)
    assert part is not None
    return [row.status for row in part.outbox.values()]


def test_a_task_started_before_the_next_pass_is_never_acknowledged(tmp_path: Path) -> None:
    ctx, queue, run_id = _triggered(tmp_path)
    envelope: dict[str, Any] = json.loads(queue.inner.take()[0].body)
    ids = {"attempt": envelope["attempt"], "attemptId": envelope["attemptId"], "workerId": "w1"}
    headers = {"authorization": f"Bearer {envelope['taskToken']}"}
    task_id = encode_task_id(envelope["runId"], envelope["taskKey"])
    task_started(ctx, task_id, headers, {**ids, "executionId": "x-1"})
    _, _, _, changed = compact_workspace(ctx, "default", WS)
    assert act_on(ctx, "default", WS, changed) == 0
    assert "DispatchEnqueued" not in _ledger_types(ctx)
    assert _outbox(ctx, run_id) == []  # the start consumed the request's row


def test_a_task_not_started_by_the_next_pass_is_acknowledged_without_a_second_enqueue(tmp_path: Path) -> None:
    ctx, queue, run_id = _triggered(tmp_path)
    _, _, _, changed = compact_workspace(ctx, "default", WS)
    assert _outbox(ctx, run_id) == ["PENDING"]
    assert act_on(ctx, "default", WS, changed) == 1  # the acknowledgement
    assert len(queue.calls) == 1  # this instance enqueued it: not enqueued again
    assert act_on(ctx, "default", WS, changed) == 0  # not acknowledged twice before it is folded
    compact_workspace(ctx, "default", WS)
    assert _outbox(ctx, run_id) == ["CREATED"]
    assert _ledger_types(ctx).count("DispatchEnqueued") == 1


def test_after_a_restart_a_pending_request_is_enqueued_again(tmp_path: Path) -> None:
    # The in-process queue died with the process that enqueued: the new one does not know it did.
    ctx, queue, run_id = _triggered(tmp_path)
    _, _, _, changed = compact_workspace(ctx, "default", WS)
    restarted = replace(ctx, cache={})
    assert act_on(restarted, "default", WS, changed) == 1
    assert len(queue.calls) == 2
    compact_workspace(ctx, "default", WS)
    assert _outbox(ctx, run_id) == ["CREATED"]


def test_the_gcp_path_acknowledges_at_once(tmp_path: Path) -> None:
    ctx, _, _ = make_context(tmp_path, compact=False, defer_dispatch_ack=False)
    body = manifest(asset("ns.a"))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})
    _, _, _, changed = compact_workspace(ctx, "default", WS)
    assert act_on(ctx, "default", WS, changed) == 2
    assert _ledger_types(ctx)[-2:] == ["DispatchRequested", "DispatchEnqueued"]


def test_a_deferred_acknowledgement_is_not_built_only_to_be_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Building an event checks its ids (a DispatchEnqueued parses its dispatch id): a pass that
    # records the request alone has no acknowledgement to build (issue 21, CPU per task).
    from servo.core.events import DispatchEnqueued
    from servo.services import effects

    built: list[str] = []

    def counting(*args: Any, **kwargs: Any) -> DispatchEnqueued:
        ack = DispatchEnqueued(*args, **kwargs)
        built.append(ack.dispatch_id)
        return ack

    monkeypatch.setattr(effects, "DispatchEnqueued", counting)
    _triggered(tmp_path)
    assert built == []
