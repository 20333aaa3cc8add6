"""A trigger dispatches its run's roots itself, before any publish shows the run (issue 21).

Where the roots' callbacks reach the instance that triggered (the embedded stack sets
``trigger_dispatch``), a short run's creation need not be published before its first task: the
trigger carries out the compactor's own root dispatches and the creation shares the publish of the
run's end. These run the services with no compaction until a test asks for one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servo.core.errors import CallbackRejected
from servo.core.ids import dispatch_id
from servo.services.callbacks import task_completed, task_started
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import compact_and_act
from servo.services.read_model import load_snapshot
from servo.services.runs import load_run
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.services.test_callback_dispatch import _call, ledger_task_keys
from tests.support.context import FakeClock, RecordingQueue, make_context

WS = "prod"
TENANT = "default"


def _stack(
    tmp_path: Path, roots: int = 1, **settings: Any
) -> tuple[ServiceContext, FakeClock, RecordingQueue]:
    settings = {"callback_dispatch": True, "trigger_dispatch": True, **settings}
    ctx, clock, queue = make_context(tmp_path, compact=False, **settings)
    body = manifest(
        *(asset(f"ns.r{i}") for i in range(roots)), asset("ns.z", *(f"ns.r{i}" for i in range(roots)))
    )
    assert deploy_manifest(ctx, TENANT, WS, json.dumps(body).encode(), None)[0] == 201
    return ctx, clock, queue


def _trigger(ctx: ServiceContext, roots: int) -> str:
    body = {"selection": [f"ns.r{i}" for i in range(roots)], "includeDownstream": True}
    status, answer = trigger_run(ctx, TENANT, WS, body)
    assert status == 201
    return str(answer["runId"])


def test_the_trigger_dispatches_the_roots_the_compactor_would_and_nothing_is_dispatched_twice(
    tmp_path: Path,
) -> None:
    ctx, _, queue = _stack(tmp_path, roots=2)
    run_id = _trigger(ctx, 2)
    assert load_snapshot(ctx.workspace_store(TENANT, WS)).get_run(run_id) is None  # nothing published
    sent = sorted((e["taskKey"], e["dispatchId"]) for e in (json.loads(t.body) for t in queue.take()))
    assert sent == [(k, dispatch_id(run_id, k, 1)) for k in ("ns.r0", "ns.r1")]  # the compactor's ids
    assert compact_and_act(ctx, TENANT, WS).published
    assert queue.take() == []  # the compactor finds both dispatches recorded
    assert ledger_task_keys(ctx, "DispatchRequested") == ["ns.r0", "ns.r1"]  # once each, by the trigger
    view = load_run(ctx, TENANT, WS, run_id)
    assert view is not None
    assert {k: t.state for k, t in view.tasks.items()} == {
        "ns.r0": "DISPATCHED",
        "ns.r1": "DISPATCHED",
        "ns.z": "BLOCKED",
    }


def test_the_roots_callbacks_see_the_run_before_it_is_published(tmp_path: Path) -> None:
    ctx, clock, queue = _stack(tmp_path)
    run_id = _trigger(ctx, 1)
    envelope = json.loads(queue.take()[0].body)
    task_id, headers, ids = _call(envelope)
    clock.advance(10)
    task_started(ctx, task_id, headers, {**ids, "executionId": "x"})
    clock.advance(10)
    task_completed(ctx, task_id, headers, {**ids, "outcome": "SUCCEEDED"})
    assert [json.loads(t.body)["taskKey"] for t in queue.take()] == ["ns.z"]  # the callback's hop
    assert load_snapshot(ctx.workspace_store(TENANT, WS)).get_run(run_id) is None


def test_a_callback_without_the_triggers_memory_is_told_to_retry_not_that_the_task_is_unknown(
    tmp_path: Path,
) -> None:
    ctx, _, queue = _stack(tmp_path)
    _trigger(ctx, 1)
    envelope = json.loads(queue.take()[0].body)
    ctx.cache.clear()  # another instance: it sees only published views, and none shows the run
    task_id, headers, ids = _call(envelope)
    with pytest.raises(CallbackRejected) as refused:
        task_started(ctx, task_id, headers, {**ids, "executionId": "x"})
    assert (refused.value.http_status, refused.value.error) == (503, "dispatch_not_visible")


@pytest.mark.parametrize(("roots", "by_trigger"), [(8, 8), (9, 0)])
def test_a_wide_runs_roots_are_the_compactors(tmp_path: Path, roots: int, by_trigger: int) -> None:
    # Up to 8 ready roots the trigger dispatches; past that, one publish carries them all.
    ctx, _, queue = _stack(tmp_path, roots=roots)
    _trigger(ctx, roots)
    assert len(queue.take()) == by_trigger
    assert compact_and_act(ctx, TENANT, WS).published
    assert len(queue.take()) == roots - by_trigger


def test_without_the_setting_the_trigger_leaves_the_roots_to_the_compactor(tmp_path: Path) -> None:
    # On GCP (the setting's default) a root's callbacks may reach any instance: it waits for the publish.
    ctx, _, queue = _stack(tmp_path, trigger_dispatch=False)
    _trigger(ctx, 1)
    assert queue.take() == []
    assert compact_and_act(ctx, TENANT, WS).published
    assert [json.loads(t.body)["taskKey"] for t in queue.take()] == ["ns.r0"]


class _RefusingOnce(RecordingQueue):
    """A queue whose first enqueue fails (Cloud Tasks unavailable for a moment)."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse = 1

    def enqueue(self, queue: str, task: Any) -> None:
        if self.refuse:
            self.refuse -= 1
            raise RuntimeError("queue unavailable")
        super().enqueue(queue, task)


def test_a_failed_root_dispatch_hands_the_creation_over_again_as_urgent(tmp_path: Path) -> None:
    # Left to the compactor, the creation's publish unblocks the roots: it must not wait for company.
    ctx, _, _ = _stack(tmp_path)
    handed: list[tuple[list[str], bool, bool]] = []

    def hook(_ctx: Any, _t: str, _w: str, names: Any, *, await_publish: bool, urgent: bool = True) -> None:
        handed.append((sorted(names), await_publish, urgent))

    queue = _RefusingOnce()
    ctx = replace(ctx, after_ledger_write=hook, queue=queue)
    _trigger(ctx, 1)
    assert [(a, u) for _, a, u in handed] == [(False, False), (False, True)]
    assert handed[0][0] == handed[1][0]
    assert compact_and_act(ctx, TENANT, WS).published
    assert [json.loads(t.body)["taskKey"] for t in queue.take()] == ["ns.r0"]
