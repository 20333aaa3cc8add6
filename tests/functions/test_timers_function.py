"""The timers function: the scheduler's sweep and Cloud Tasks' due timers (design §6)."""

from __future__ import annotations

from typing import Any

import pytest
from functions_framework import create_app
from servo.http.runtime import function_context, override_context
from servo.services.trigger import trigger_run

from tests.functions.test_callback_function import ROOT, WS, Stack, start_run
from tests.functions.test_callback_function import stack as stack


@pytest.fixture
def timers(stack: Stack) -> Any:
    return create_app("timers", str(ROOT / "functions/timers/main.py")).test_client()


def sweep(timers: Any) -> Any:
    headers = {"X-CloudScheduler": "true", **function_context().settings.internal_headers()}
    res = timers.post("/v1/timers/sweep", json={}, headers=headers)
    assert res.status_code == 200, res.get_json()
    return res.get_json()


def test_a_silent_worker_is_failed_with_heartbeat_timeout_and_retried(stack: Stack, timers: Any) -> None:
    run_id, env = start_run(stack, "ns.a", downstream=False)
    stack.call(env, "started", stack.ids(env))
    stack.clock.advance(60_000)
    sweep(timers)
    assert stack.task(run_id, "ns.a").state == "RUNNING"  # 60 s < 90 s default timeout
    stack.clock.advance(31_000)
    report = sweep(timers)
    assert report["workspaces"][f"default/{WS}"]["repairs"] == 1
    task = stack.task(run_id, "ns.a")
    assert task.state == "RETRY_WAIT" and task.error_category == "INFRASTRUCTURE"
    assert "HEARTBEAT_TIMEOUT" in (task.error_message or "")
    stack.clock.advance(5_001)
    sweep(timers)
    (retry,) = stack.envelopes()
    assert retry["attempt"] == 2


def test_a_due_timer_fires_and_the_retry_is_dispatched(stack: Stack, timers: Any) -> None:
    _, env = start_run(stack, "ns.a", downstream=False)
    stack.call(env, "started", stack.ids(env))
    stack.call(
        env, "completed", stack.ids(env, outcome="FAILED", error={"category": "USER_CODE", "message": "x"})
    )
    assert stack.envelopes() == []
    (timer,) = stack.timers
    stack.clock.advance(5_000)
    res = timers.post("/v1/timers/fire", data=timer.body, headers=timer.headers)
    assert res.status_code == 200
    (retry,) = stack.envelopes()
    assert retry["attempt"] == 2
    # A duplicated delivery of the same timer changes nothing.
    assert timers.post("/v1/timers/fire", data=timer.body, headers=timer.headers).status_code == 200
    assert stack.envelopes() == []


def test_cancel_grace_forces_a_running_task_cancelled(stack: Stack, timers: Any) -> None:
    from servo.services.cancel import cancel_run

    run_id, env = start_run(stack, "ns.a", downstream=False)
    stack.call(env, "started", stack.ids(env))
    cancel_run(stack.ctx, "default", WS, run_id, {})
    stack.clock.advance(10_000)
    stack.call(env, "heartbeat", stack.ids(env))
    sweep(timers)
    assert stack.run_state(run_id) == "CANCELLING"
    stack.clock.advance(21_000)
    sweep(timers)
    assert stack.run_state(run_id) == "CANCELLED"
    assert stack.task(run_id, "ns.a").state == "CANCELLED"


def test_run_timeout_ends_the_run_timed_out(stack: Stack, timers: Any) -> None:
    status, body = trigger_run(stack.ctx, "default", WS, {"selection": ["ns.a"], "timeoutSeconds": 60})
    assert status == 201
    (env,) = stack.envelopes()
    stack.call(env, "started", stack.ids(env))
    stack.clock.advance(61_000)
    stack.call(env, "heartbeat", stack.ids(env))
    sweep(timers)
    hb = stack.call(env, "heartbeat", stack.ids(env)).get_json()
    assert hb["shouldCancel"] is True
    stack.clock.advance(31_000)
    stack.call(env, "heartbeat", stack.ids(env))
    sweep(timers)
    assert stack.run_state(body["runId"]) == "TIMED_OUT"


@pytest.mark.parametrize(
    "body", [{"tenantId": "default"}, {"tenantId": "default", "workspaceId": WS}, {"timerId": "nope"}]
)
def test_malformed_timer_deliveries_are_400(stack: Stack, timers: Any, body: dict[str, Any]) -> None:
    headers = stack.ctx.settings.internal_headers()
    assert timers.post("/v1/timers/fire", json=body, headers=headers).status_code == 400


def test_in_gcp_the_sweep_kicks_the_compactor_instead_of_writing_state(tmp_path: Any) -> None:
    from dataclasses import replace

    from servo.services.timers import sweep as sweep_service

    from tests.support.context import make_context

    ctx, _, _ = make_context(tmp_path, compact=False)
    ctx = replace(ctx, settings=replace(ctx.settings, sweep_kicks=True))
    store = ctx.workspace_store("default", WS)
    scope = {"tenantId": "default", "workspaceId": WS}
    sweep_service(ctx, scope)
    assert store.list("ledger/kicks/") == []  # idle: nothing to kick, no write at rest
    deploy_and_trigger_without_compaction(ctx)
    sweep_service(ctx, scope)
    (kick,) = store.list("ledger/kicks/")
    assert kick.name.endswith(".kick")
    assert store.list("state/") == []


def deploy_and_trigger_without_compaction(ctx: Any) -> None:
    import json

    from servo.services.manifests import deploy_manifest

    from tests.functions.test_deploy_function import asset, manifest

    assert deploy_manifest(ctx, "default", WS, json.dumps(manifest(asset("ns.a"))).encode(), None)[0] == 201
    assert trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})[0] == 201


def test_a_kick_object_makes_the_compactor_fold_a_lost_finalize(stack: Stack) -> None:
    """A ledger object whose finalize event was lost is folded when the sweep's kick arrives."""
    from dataclasses import replace

    from cloudevents.conversion import to_binary
    from cloudevents.http import CloudEvent
    from servo.http.runtime import override_context
    from servo.services.timers import kick_compactor
    from servo.services.trigger import trigger_run as trigger

    silent = replace(stack.ctx, after_ledger_write=None)  # the finalize event is "lost"
    status, body = trigger(silent, "default", WS, {"selection": ["ns.a"]})
    assert status == 201
    from servo.services.runs import load_run

    assert load_run(stack.ctx, "default", WS, body["runId"]) is None
    name = kick_compactor(silent, "default", WS)
    event = CloudEvent(
        {"type": "google.cloud.storage.object.v1.finalized", "source": "//storage.googleapis.com/x"},
        {"bucket": stack.ctx.settings.bucket, "name": f"default/{WS}/{name}"},
    )
    headers, data = to_binary(event)
    with override_context(stack.ctx):
        app = create_app("compactor", str(ROOT / "functions/compactor/main.py"), "cloudevent").test_client()
        assert app.post("/", headers=headers, data=data).status_code == 200
    view = load_run(stack.ctx, "default", WS, body["runId"])
    assert view is not None and view.run is not None


@pytest.mark.parametrize("api_token", [None, "api-token"])
@pytest.mark.parametrize("route", ["sweep", "fire"])
@pytest.mark.parametrize(
    "credential",
    [{}, {"Authorization": "Bearer api-token"}, {"X-Servo-Dispatch-Secret": "wrong"}],
    ids=["none", "api-token", "wrong-secret"],
)
def test_internal_routes_need_the_internal_credential_in_every_mode(
    stack: Stack, timers: Any, api_token: str | None, route: str, credential: dict[str, str]
) -> None:
    from dataclasses import replace

    ctx = replace(stack.ctx, settings=replace(stack.ctx.settings, api_token=api_token))
    run_id, _ = start_run(stack, "ns.a", downstream=False)
    # A forged timer for another tenant: it would write a TimerFired event into acme's ledger.
    body = {"tenantId": "acme", "workspaceId": WS, "timerId": f"timer:retry:{run_id}:ns.a:1:1800000005"}
    before = [(m.name, m.generation) for m in ctx.store.list("")]
    with override_context(ctx):
        res = timers.post(f"/v1/timers/{route}", json=body, headers=credential)
        assert res.status_code == 401, res.get_json()
        assert res.get_json()["code"] == "UNAUTHORIZED"
        assert [(m.name, m.generation) for m in ctx.store.list("")] == before
        allowed = timers.post(f"/v1/timers/{route}", json=body, headers=ctx.settings.internal_headers())
        assert allowed.status_code == 200, allowed.get_json()


def test_on_gcp_the_sweep_is_authenticated_by_the_platform_and_a_timer_still_needs_the_credential(
    stack: Stack, timers: Any
) -> None:
    """Cloud Scheduler carries only its OIDC token (Cloud Run's invoker binding checks it): the dispatch
    secret never enters Terraform's state, so the job cannot send it. The sweep takes no tenant data
    and only repeats idempotent repairs; a due timer writes into a tenant's ledger, and its Cloud Task
    carries the credential, which is still required."""
    from dataclasses import replace

    on_gcp = replace(stack.ctx.settings, storage="gcs", storage_emulator_host=None)
    ctx = replace(stack.ctx, settings=on_gcp)
    assert on_gcp.platform_authenticates_scheduler
    assert not replace(on_gcp, storage_emulator_host="http://127.0.0.1:1").platform_authenticates_scheduler
    run_id, _ = start_run(stack, "ns.a", downstream=False)
    timer = {"tenantId": "default", "workspaceId": WS, "timerId": f"timer:retry:{run_id}:ns.a:1:1800000005"}
    with override_context(ctx):
        assert timers.post("/v1/timers/sweep", json={}).status_code == 200
        assert timers.post("/v1/timers/fire", json=timer).status_code == 401


def test_a_timer_for_an_unknown_run_writes_nothing_and_leaves_nothing_active(stack: Stack) -> None:
    # A forged or stray timer used to create a run partition with no run, active for ever: the sweep
    # visited it and, in GCP, wrote a kick object every minute at rest.
    from servo.core.ids import timer_id
    from servo.services.timers import fire_timer

    ledger = stack.ctx.workspace_store("default", WS)
    before = ledger.list("ledger/")
    stray = timer_id("retry", "01JAAAAAAAAAAAAAAAAAAAAAAA", "ns.a", 1, 1_800_000_000)
    answer = fire_timer(stack.ctx, {"tenantId": "default", "workspaceId": WS, "timerId": stray})
    assert answer["acknowledged"] is True  # so the queue does not deliver it again
    assert ledger.list("ledger/") == before
    assert stack.ctx.snapshot("default", WS).active_run_ids() == []
