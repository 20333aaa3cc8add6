"""Reruns through the trigger function (automation §6.7, scenarios U1–U5)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from servo.core.events import decode_event
from servo.http.runtime import override_context
from servo.services.compaction import load_published_state, rebuild
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import compact_workspace
from servo.services.rerun import rerun_run
from servo.services.run_creation import finish_creation
from servo.services.runs import get_run, load_run
from servo.services.timers import sweep
from servo.services.trigger import trigger_run
from servo.store import LocalFileStore

from tests.functions.test_callback_function import Stack
from tests.functions.test_deploy_function import asset, manifest
from tests.services.compaction_support import view
from tests.support.context import make_context
from tests.support.faults import Crash, CrashAt, FaultPlan, FaultyStore, phase

ROOT = Path(__file__).resolve().parents[2]
WS = "prod"
T = "default"


@dataclass
class RerunStack(Stack):
    trigger_client: Any = None


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RerunStack]:
    ctx, clock, queue = make_context(tmp_path)
    body = manifest(asset("ns.a"), asset("ns.b", "ns.a"), asset("ns.c", "ns.b"))
    assert deploy_manifest(ctx, T, WS, json.dumps(body).encode(), None)[0] == 201
    with override_context(ctx):
        callback = create_app("callback", str(ROOT / "functions/callback/main.py")).test_client()
        trigger = create_app("trigger", str(ROOT / "functions/trigger/main.py")).test_client()
        yield RerunStack(ctx, clock, queue, callback, trigger_client=trigger)


def rerun(stack: RerunStack, run_id: str, body: dict[str, Any]) -> Any:
    return stack.trigger_client.post(f"/v1/workspaces/{WS}/runs/{run_id}/rerun", json=body)


def _attempt(stack: RerunStack, env: dict[str, Any], outcome: str) -> None:
    assert stack.call(env, "started", stack.ids(env)).status_code == 200
    error = {"category": "USER_CODE", "message": "boom"} if outcome == "FAILED" else None
    extra = {"outcome": outcome, **({"error": error} if error else {})}
    assert stack.call(env, "completed", stack.ids(env, **extra)).status_code == 200


def failed_chain(stack: RerunStack) -> str:
    """U1's parent: A succeeds, B fails its three attempts, C is skipped; the run ends FAILED."""
    status, body = trigger_run(stack.ctx, T, WS, {"selection": ["ns.a"], "includeDownstream": True})
    assert status == 201
    (env_a,) = stack.envelopes()
    _attempt(stack, env_a, "SUCCEEDED")
    for attempt in (1, 2, 3):
        if attempt > 1:
            stack.clock.advance(120_000)
            sweep(stack.ctx, {"tenantId": T, "workspaceId": WS})
        (env_b,) = stack.envelopes()
        assert env_b["taskKey"] == "ns.b" and env_b["attempt"] == attempt
        _attempt(stack, env_b, "FAILED")
    run_id = str(body["runId"])
    assert stack.run_state(run_id) == "FAILED"
    states = {k: t.state for k, t in load_run(stack.ctx, T, WS, run_id).tasks.items()}  # type: ignore[union-attr]
    assert states == {"ns.a": "SUCCEEDED", "ns.b": "FAILED", "ns.c": "SKIPPED"}
    return run_id


def succeeded_chain(stack: RerunStack) -> str:
    status, body = trigger_run(stack.ctx, T, WS, {"selection": ["ns.a"], "includeDownstream": True})
    assert status == 201
    for _ in range(3):
        (env,) = stack.envelopes()
        _attempt(stack, env, "SUCCEEDED")
    assert stack.run_state(body["runId"]) == "SUCCEEDED"
    return str(body["runId"])


def ledger(stack: RerunStack) -> list[Any]:
    store = stack.ctx.workspace_store(T, WS)
    return [decode_event(store.get(o.name).data) for o in store.list("ledger/")]  # type: ignore[union-attr]


def stored_names(stack: RerunStack) -> set[str]:
    return {o.name for o in stack.ctx.workspace_store(T, WS).list("")}


def planned(stack: RerunStack, run_id: str) -> dict[str, tuple[str, ...]]:
    (plan,) = [e.data for e in ledger(stack) if e.event_type == "PlanCreated" and e.data.run_id == run_id]
    return {t.key: t.depends_on for t in plan.tasks}


def test_u1_from_failure_plans_the_unsucceeded_tasks_with_their_edge_and_lineage(stack: RerunStack) -> None:
    parent = failed_chain(stack)
    res = rerun(stack, parent, {"mode": "fromFailure", "labels": {"team": "data"}})
    assert res.status_code == 201, res.get_json()
    body = res.get_json()
    assert body["created"] is True and body["state"] == "PENDING"
    assert body["parentRunId"] == parent and body["rootRunId"] == parent
    assert body["rerunKind"] == "FROM_FAILURE" and body["rerunReason"] == "from_failure_unsucceeded_tasks"
    child = body["runId"]
    assert planned(stack, child) == {"ns.b": (), "ns.c": ("ns.b",)}
    (triggered,) = [
        e.data for e in ledger(stack) if e.event_type == "RunTriggered" and e.data.run_id == child
    ]
    assert triggered.trigger == {"type": "rerun", "rerun": {"parent_run_id": parent, "kind": "from_failure"}}
    assert triggered.run_key is not None and triggered.run_key.startswith(f"rerun:{parent}:from_failure:")
    assert len(triggered.run_key.rsplit(":", 1)[1]) == 16
    shown = get_run(stack.ctx, T, WS, child)
    assert shown["labels"] == {
        "servo.parent_run_id": parent,
        "servo.root_run_id": parent,
        "servo.rerun.kind": "from_failure",
        "team": "data",
    }
    assert (shown["parentRunId"], shown["rootRunId"], shown["rerunKind"]) == (parent, parent, "FROM_FAILURE")
    # The parent's TaskDefs are reused: B keeps its three attempts.
    assert load_run(stack.ctx, T, WS, child).tasks["ns.b"].max_attempts == 3  # type: ignore[union-attr]

    events_before = len(ledger(stack))
    again = rerun(stack, parent, {"mode": "fromFailure", "labels": {"team": "data"}})
    assert again.status_code == 200 and again.get_json()["runId"] == child
    assert again.get_json()["created"] is False and again.get_json()["rerunKind"] == "FROM_FAILURE"
    assert len(ledger(stack)) == events_before  # a repeat appends nothing

    # The rerun runs: B and C succeed, and a rerun of the rerun keeps the root.
    (env_b,) = stack.envelopes()
    assert env_b["taskKey"] == "ns.b" and env_b["attempt"] == 1
    _attempt(stack, env_b, "SUCCEEDED")
    (env_c,) = stack.envelopes()
    _attempt(stack, env_c, "SUCCEEDED")
    assert stack.run_state(child) == "SUCCEEDED"
    grandchild = rerun(stack, child, {"mode": "subset", "selection": ["ns.c"]}).get_json()
    assert grandchild["parentRunId"] == child and grandchild["rootRunId"] == parent

    store = stack.ctx.workspace_store(T, WS)
    rebuilt, malformed = rebuild(store, tenant_id=T, workspace_id=WS)
    assert not malformed
    assert view(rebuilt) == view(load_published_state(store, tenant_id=T, workspace_id=WS))


def test_u2_from_failure_of_a_succeeded_or_running_parent_is_409_and_stores_nothing(
    stack: RerunStack,
) -> None:
    done = succeeded_chain(stack)
    before = stored_names(stack)
    res = rerun(stack, done, {"mode": "fromFailure"})
    assert res.status_code == 409 and res.get_json()["details"]["conflictType"] == "PARENT_NOT_FAILED"
    _, running = trigger_run(stack.ctx, T, WS, {"selection": ["ns.a"]})
    before = stored_names(stack)
    res = rerun(stack, running["runId"], {"mode": "fromFailure"})
    assert res.status_code == 409 and res.get_json()["details"]["conflictType"] == "PARENT_NOT_TERMINAL"
    assert stored_names(stack) == before


def test_u3_subset_with_and_without_downstream_and_outside_the_plan(stack: RerunStack) -> None:
    parent = failed_chain(stack)
    down = rerun(stack, parent, {"mode": "subset", "selection": ["ns.b"], "includeDownstream": True})
    assert down.status_code == 201 and down.get_json()["rerunKind"] == "SUBSET"
    assert down.get_json()["rerunReason"] == "subset_selection"
    assert planned(stack, down.get_json()["runId"]) == {"ns.b": (), "ns.c": ("ns.b",)}
    only = rerun(stack, parent, {"mode": "subset", "selection": ["ns/b"]})
    assert only.status_code == 201 and planned(stack, only.get_json()["runId"]) == {"ns.b": ()}
    up = rerun(stack, parent, {"mode": "subset", "selection": ["ns.c"], "includeUpstream": True})
    assert planned(stack, up.get_json()["runId"]) == {"ns.a": (), "ns.b": ("ns.a",), "ns.c": ("ns.b",)}

    before = stored_names(stack)
    outside = rerun(stack, parent, {"mode": "subset", "selection": ["ns.b", "ns.zz"]})
    assert outside.status_code == 400 and "ns.zz" in outside.get_json()["message"]
    assert stored_names(stack) == before


def test_u4_an_explicit_run_key_reused_for_other_tasks_is_409_with_diagnostics(stack: RerunStack) -> None:
    parent = failed_chain(stack)
    first = rerun(stack, parent, {"mode": "subset", "selection": ["ns.b"], "runKey": "fix-1"})
    assert first.status_code == 201
    same = rerun(stack, parent, {"mode": "subset", "selection": ["ns.b"], "runKey": "fix-1"})
    assert same.status_code == 200 and same.get_json()["runId"] == first.get_json()["runId"]
    other = rerun(stack, parent, {"mode": "fromFailure", "runKey": "fix-1"})
    assert other.status_code == 409
    details = other.get_json()["details"]
    assert details["conflictType"] == "RUN_KEY_FINGERPRINT_MISMATCH" and details["runKey"] == "fix-1"
    assert details["existingRunId"] == first.get_json()["runId"]
    assert details["existingFingerprint"] != details["requestedFingerprint"]


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "fromFailure", "labels": {"servo.parent_run_id": "x"}},
        {"mode": "subset", "selection": ["ns.b"], "labels": {"servo.rerun.kind": "x"}},
    ],
)
def test_u5_a_servo_label_on_a_rerun_is_400_naming_it(stack: RerunStack, body: dict[str, Any]) -> None:
    parent = failed_chain(stack)
    before = stored_names(stack)
    res = rerun(stack, parent, body)
    assert res.status_code == 400
    (label,) = body["labels"]
    assert label in res.get_json()["message"]
    assert stored_names(stack) == before


def test_u5_a_servo_label_on_trigger_run_is_400_naming_it(stack: RerunStack) -> None:
    body = {"selection": ["ns.a"], "labels": {"servo.x": "1"}}
    res = stack.trigger_client.post(f"/v1/workspaces/{WS}/runs", json=body)
    assert res.status_code == 400 and "servo.x" in res.get_json()["message"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "mode"),
        ({"mode": "again"}, "mode"),
        ({"mode": {}}, "mode"),
        ({"mode": ["subset"]}, "mode"),
        ({"mode": "subset"}, "selection"),
        ({"mode": "subset", "selection": []}, "selection"),
        ({"mode": "fromFailure", "selection": ["ns.b"]}, "fromFailure"),
        ({"mode": "fromFailure", "includeDownstream": True}, "fromFailure"),
        ({"mode": "subset", "selection": ["ns.b"], "includeDownstream": "yes"}, "includeDownstream"),
        ({"mode": "fromFailure", "runKey": ""}, "runKey"),
        ({"mode": "fromFailure", "labels": []}, "labels"),
    ],
)
def test_bad_rerun_bodies_are_400_and_store_nothing(
    stack: RerunStack, body: dict[str, Any], needle: str
) -> None:
    parent = failed_chain(stack)
    before = stored_names(stack)
    res = rerun(stack, parent, body)
    assert res.status_code == 400 and needle in res.get_json()["message"]
    assert stored_names(stack) == before


def test_an_unknown_parent_is_404(stack: RerunStack) -> None:
    res = rerun(stack, "01ARZ3NDEKTSV4RRFFQ69G5FAV", {"mode": "fromFailure"})
    assert res.status_code == 404


def test_a_parent_whose_assets_are_no_longer_deployed_is_400_naming_them(stack: RerunStack) -> None:
    parent = failed_chain(stack)
    body = manifest(asset("ns.a"), asset("ns.b", "ns.a"), code_version="cv2")
    assert deploy_manifest(stack.ctx, T, WS, json.dumps(body).encode(), None)[0] == 201
    before = stored_names(stack)
    res = rerun(stack, parent, {"mode": "fromFailure"})
    assert res.status_code == 400 and "ns.c" in res.get_json()["message"]
    assert stored_names(stack) == before


@pytest.mark.parametrize("kind", ["run-key", "run-creation", "ledger:RunTriggered", "ledger:PlanCreated"])
def test_a_rerun_that_crashed_at_any_write_is_finished_by_its_repeat(tmp_path: Path, kind: str) -> None:
    base, clock, queue = make_context(tmp_path)
    store = FaultyStore(LocalFileStore(tmp_path / base.settings.bucket, durable=False))
    store.enabled = False
    ctx = replace(base, store=store)
    body = manifest(asset("ns.a"), asset("ns.b", "ns.a"), asset("ns.c", "ns.b"))
    assert deploy_manifest(ctx, T, WS, json.dumps(body).encode(), None)[0] == 201
    with override_context(ctx):
        callback = create_app("callback", str(ROOT / "functions/callback/main.py")).test_client()
        stack = RerunStack(ctx, clock, queue, callback)
        parent = failed_chain(stack)
        store.enabled = True
        store.set_plan(FaultPlan(crashes=(CrashAt(".*", 1, "before", phase="rerun", kind=f"^{kind}$"),)))
        with phase("rerun"), pytest.raises(Crash):
            rerun_run(ctx, T, WS, parent, {"mode": "fromFailure"})
        compact_workspace(ctx, T, WS)
        status, answer = rerun_run(ctx, T, WS, parent, {"mode": "fromFailure"})
        assert status == (201 if kind == "run-key" else 200)
        child = answer["runId"]
        assert planned(stack, child) == {"ns.b": (), "ns.c": ("ns.b",)}
        triggered = [e for e in ledger(stack) if e.event_type == "RunTriggered" and e.data.run_id == child]
        assert len(triggered) == 1
        assert rerun_run(ctx, T, WS, parent, {"mode": "fromFailure"})[1]["runId"] == child
        assert finish_creation(ctx, T, WS, child) == 0  # nothing left to write: the events are idempotent
        rebuilt, malformed = rebuild(store, tenant_id=T, workspace_id=WS)
        assert not malformed
        assert view(rebuilt) == view(load_published_state(store, tenant_id=T, workspace_id=WS))


def test_u6_the_parent_attributes_its_retries_and_its_skip_to_the_first_failed_upstream(
    stack: RerunStack,
) -> None:
    parent = get_run(stack.ctx, T, WS, failed_chain(stack))
    tasks = {t["taskKey"]: t for t in parent["tasks"]}
    assert tasks["ns.b"]["retryAttribution"] == {"retries": 2, "reason": "prior_attempt_failed"}
    assert "retryAttribution" not in tasks["ns.a"]  # one attempt, nothing to attribute
    assert tasks["ns.c"]["skipAttribution"] == {"upstreamTaskKey": "ns.b", "upstreamResolution": "FAILED"}


def test_u6_a_skip_with_two_failed_upstreams_at_the_same_moment_names_the_first_by_key() -> None:
    from servo.core.rows import DepRow, TaskRow
    from servo.services.runs import _skip_attribution

    skipped = TaskRow(
        "r1", "ns.d", "SKIPPED", 0, None, None, None, None, 2, 2, 3, 90, None, None, "ns.d", None
    )
    edges = tuple(
        DepRow("r1", up, "ns.d", True, "FAILED", 1_800_000_000_000, 3, f"v{i}")
        for i, up in enumerate(["ns.z", "ns.b"])
    )
    assert _skip_attribution(skipped, edges) == {"upstreamTaskKey": "ns.b", "upstreamResolution": "FAILED"}
