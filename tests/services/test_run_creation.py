"""A run's creation is finished by whoever comes next, and always with the creator's exact bytes.

Items 4 and 5 of issue 15: a same-key trigger arriving while the creator is between its writes must not
rewrite the run's events (other traceparent, timeout or manifest) and answer 409 to the creator; a run
whose PlanCreated never landed must be finished by the same-key retry and by the sweep.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servo.services.cancel import cancel_run
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import compact_workspace
from servo.services.runs import load_run
from servo.services.timers import register_workspace, sweep
from servo.services.trigger import trigger_run
from servo.store import LocalFileStore

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context
from tests.support.faults import Crash, CrashAt, FaultPlan, FaultyStore, current_phase, phase

WS = "prod"
TRACE_A = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_B = "00-1bf7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _deploy(ctx: ServiceContext, *assets: dict[str, Any], code_version: str = "cv1") -> None:
    body = json.dumps(manifest(*assets, code_version=code_version)).encode()
    assert deploy_manifest(ctx, "default", WS, body, None)[0] == 201


class _PausingStore:
    """Holds the creator's first write under ``at`` until ``resume`` is set: the creator is slow after
    its reservation (before its creation record, or before its events) while another request runs."""

    def __init__(self, inner: Any, at: str) -> None:
        self._inner = inner
        self._at = at
        self.paused = threading.Event()
        self.resume = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def create(self, name: str, data: bytes, **kwargs: Any) -> Any:
        if current_phase() == "creator" and self._at in name and not self.paused.is_set():
            self.paused.set()
            assert self.resume.wait(timeout=30)
        return self._inner.create(name, data, **kwargs)


@pytest.mark.parametrize("paused_at", ["/creations/", "/ledger/"], ids=["before-record", "before-events"])
def test_a_same_key_trigger_racing_the_creator_never_answers_409_to_the_creator(
    tmp_path: Path, paused_at: str
) -> None:
    ctx, _, _ = make_context(tmp_path, compact=False)
    _deploy(ctx, asset("ns.a"), asset("ns.b", "ns.a"))
    pausing = _PausingStore(ctx.store, paused_at)
    ctx = replace(ctx, store=pausing)
    answers: dict[str, Any] = {}

    def create() -> None:
        try:
            with phase("creator"):
                answers["creator"] = trigger_run(
                    ctx,
                    "default",
                    WS,
                    {"selection": ["ns.a"], "runKey": "k", "timeoutSeconds": 60},
                    traceparent=TRACE_A,
                )
        except Exception as exc:  # the failure under test: reported, not swallowed
            answers["creator"] = exc

    creator = threading.Thread(target=create, name="creator")
    creator.start()
    assert pausing.paused.wait(timeout=30)
    # Meanwhile the manifest changes and the client (or another) sends the key again with other
    # transport details: it must converge on the creator's run, not re-plan it.
    _deploy(ctx, asset("ns.a"), asset("ns.b", "ns.a"), asset("ns.c", "ns.a"), code_version="cv2")
    second = trigger_run(
        ctx,
        "default",
        WS,
        {"selection": ["ns.a"], "runKey": "k", "timeoutSeconds": 999},
        traceparent=TRACE_B,
    )
    pausing.resume.set()
    creator.join(timeout=30)
    status, body = answers["creator"]
    assert status == 201 and second[0] == 200 and second[1]["runId"] == body["runId"]
    compact_workspace(ctx, "default", WS)
    view = load_run(ctx, "default", WS, body["runId"])
    assert view is not None and view.run is not None
    assert (view.run.traceparent, view.run.code_version) == (TRACE_A, "cv1")
    assert sorted(view.tasks) == ["ns.a"]


@pytest.fixture
def crashing(tmp_path: Path) -> tuple[ServiceContext, FaultyStore]:
    base, _, _ = make_context(tmp_path)
    store = FaultyStore(LocalFileStore(tmp_path / base.settings.bucket, durable=False))
    ctx = replace(base, store=store)
    store.enabled = False
    _deploy(ctx, asset("ns.a"), asset("ns.b", "ns.a"))
    register_workspace(ctx, "default", WS)
    store.enabled = True
    # The process dies as it writes PlanCreated: RunTriggered is in the ledger, the plan is not.
    store.set_plan(
        FaultPlan(crashes=(CrashAt(".*", 1, "before", phase="trigger", kind="^ledger:PlanCreated$"),))
    )
    return ctx, store


def _crashed_trigger(ctx: ServiceContext, body: dict[str, Any]) -> str:
    with phase("trigger"), pytest.raises(Crash):
        trigger_run(ctx, "default", WS, body)
    compact_workspace(ctx, "default", WS)  # the finalize event of RunTriggered
    (run_id,) = [r for r in ctx.snapshot("default", WS).active_run_ids()]
    view = load_run(ctx, "default", WS, run_id)
    assert view is not None and view.run is not None and not view.tasks  # PENDING with no plan
    return run_id


def test_the_same_key_retry_finishes_a_run_left_without_its_plan(
    crashing: tuple[ServiceContext, FaultyStore],
) -> None:
    ctx, _ = crashing
    run_id = _crashed_trigger(ctx, {"selection": ["ns.a"], "includeDownstream": True, "runKey": "k"})
    status, body = trigger_run(
        ctx, "default", WS, {"selection": ["ns.a"], "includeDownstream": True, "runKey": "k"}
    )
    assert (status, body["runId"]) == (200, run_id)
    view = load_run(ctx, "default", WS, run_id)
    assert view is not None and sorted(view.tasks) == ["ns.a", "ns.b"]


@pytest.mark.parametrize("run_key", [None, "k"], ids=["keyless", "keyed"])
def test_the_sweep_finishes_a_run_left_without_its_plan(
    crashing: tuple[ServiceContext, FaultyStore], run_key: str | None
) -> None:
    ctx, _ = crashing
    body: dict[str, Any] = {"selection": ["ns.a"], "includeDownstream": True}
    if run_key:
        body["runKey"] = run_key
    run_id = _crashed_trigger(ctx, body)
    sweep(ctx, {})
    view = load_run(ctx, "default", WS, run_id)
    assert view is not None and sorted(view.tasks) == ["ns.a", "ns.b"]
    assert ctx.queue is not None and len(ctx.queue.take()) == 1  # type: ignore[attr-defined]


def test_a_trigger_encodes_each_of_its_run_events_once(tmp_path: Path, encodings: list[str]) -> None:
    """The run's events are written with the bytes they were made with (issue 21: CPU per task)."""
    ctx, _, _ = make_context(tmp_path, compact=False)
    _deploy(ctx, asset("ns.a"))
    status, _ = trigger_run(ctx, "default", WS, {"selection": ["ns.a"]}, traceparent=None)

    assert status == 201
    assert sorted(encodings) == ["PlanCreated", "RunTriggered"]
    written = ctx.workspace_store("default", WS).list("ledger/")
    assert len(written) == 2


def test_a_cancel_encodes_its_event_once(tmp_path: Path, encodings: list[str]) -> None:
    ctx, _, _ = make_context(tmp_path, compact=False)
    _deploy(ctx, asset("ns.a"))
    run_id = trigger_run(ctx, "default", WS, {"selection": ["ns.a"]}, traceparent=None)[1]["runId"]
    compact_workspace(ctx, "default", WS)
    encodings.clear()

    _, body = cancel_run(ctx, "default", WS, run_id, {})

    assert body["state"] == "CANCELLING"
    assert encodings == ["RunCancelRequested"]
