"""Worker callbacks through the callback function: behavior §11 scenarios 26–34, contracts §10 errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from servo.http.runtime import override_context
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.runs import load_run
from servo.services.trigger import trigger_run
from servo.tokens import issue_task_token

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import FakeClock, RecordingQueue, make_context

ROOT = Path(__file__).resolve().parents[2]
WS = "prod"


@dataclass
class Stack:
    ctx: ServiceContext
    clock: FakeClock
    queue: RecordingQueue
    client: Any
    timers: list[Any] = field(default_factory=list)

    def envelopes(self) -> list[dict[str, Any]]:
        """Dispatch envelopes sent to the worker since the last call (timer tasks are set aside)."""
        taken = self.queue.take()
        self.timers.extend(t for t in taken if t.url == self.ctx.settings.timers_url)
        return [json.loads(t.body) for t in taken if t.url == self.ctx.settings.worker_url]

    def call(self, env: dict[str, Any], action: str, body: dict[str, Any], token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or env['taskToken']}"}
        return self.client.post(f"/api/v1/tasks/{env['taskId']}/{action}", json=body, headers=headers)

    def ids(self, env: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"attempt": env["attempt"], "attemptId": env["attemptId"], "workerId": "w1", **extra}

    def task(self, run_id: str, key: str) -> Any:
        view = load_run(self.ctx, "default", WS, run_id)
        assert view is not None
        return view.tasks[key]

    def run_state(self, run_id: str) -> str:
        from servo.services.runs import get_run

        return str(get_run(self.ctx, "default", WS, run_id)["state"])


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    ctx, clock, queue = make_context(tmp_path)
    body = manifest(asset("ns.a", maxRetries=2), asset("ns.b", "ns.a"), asset("ns.c", "ns.b"))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    with override_context(ctx):
        yield Stack(
            ctx, clock, queue, create_app("callback", str(ROOT / "functions/callback/main.py")).test_client()
        )


def start_run(stack: Stack, *selection: str, downstream: bool = True) -> tuple[str, dict[str, Any]]:
    status, body = trigger_run(
        stack.ctx, "default", WS, {"selection": list(selection), "includeDownstream": downstream}
    )
    assert status == 201
    (env,) = stack.envelopes()
    return body["runId"], env


def test_end_to_end_callbacks_drive_the_chain_to_success(stack: Stack) -> None:
    run_id, env = start_run(stack, "ns.a")
    assert env["taskKey"] == "ns.a" and env["attempt"] == 1 and env["taskId"].startswith("ct1_")
    assert stack.task(run_id, "ns.b").state == "BLOCKED"
    assert stack.call(env, "started", stack.ids(env)).status_code == 200
    assert stack.task(run_id, "ns.a").state == "RUNNING"
    hb = stack.call(env, "heartbeat", stack.ids(env, progressPct=50, message="half"))
    assert hb.status_code == 200 and hb.get_json()["shouldCancel"] is False
    done = stack.call(env, "completed", stack.ids(env, outcome="SUCCEEDED", output={"rowCount": 3}))
    assert done.status_code == 200 and done.get_json()["finalState"] == "SUCCEEDED"
    (env_b,) = stack.envelopes()
    assert env_b["taskKey"] == "ns.b" and env_b["payload"]["upstream"]["ns.a"]["rowCount"] == 3
    for env_next in (env_b,):
        stack.call(env_next, "started", stack.ids(env_next))
        stack.call(env_next, "completed", stack.ids(env_next, outcome="SUCCEEDED"))
    (env_c,) = stack.envelopes()
    stack.call(env_c, "started", stack.ids(env_c))
    stack.call(env_c, "completed", stack.ids(env_c, outcome="SUCCEEDED"))
    assert stack.run_state(run_id) == "SUCCEEDED"


def test_start_on_terminal_is_409_and_heartbeat_is_410_with_state(stack: Stack) -> None:
    _, env = start_run(stack, "ns.a", downstream=False)
    stack.call(env, "started", stack.ids(env))
    stack.call(env, "completed", stack.ids(env, outcome="SUCCEEDED"))
    again = stack.call(env, "started", stack.ids(env))
    assert again.status_code == 409
    assert again.get_json() == {
        "error": "task_already_terminal",
        "message": again.get_json()["message"],
        "state": "SUCCEEDED",
    }
    hb = stack.call(env, "heartbeat", stack.ids(env))
    assert hb.status_code == 410 and hb.get_json()["error"] == "task_expired"
    assert stack.call(env, "completed", stack.ids(env, outcome="FAILED")).status_code == 409


def test_redelivered_finished_attempt_is_409_attempt_already_completed_then_next_attempt_starts(
    stack: Stack,
) -> None:
    run_id, env = start_run(stack, "ns.a", downstream=False)
    stack.call(env, "started", stack.ids(env))
    error = {"category": "USER_CODE", "message": "boom"}
    stack.call(env, "completed", stack.ids(env, outcome="FAILED", error=error))
    assert stack.task(run_id, "ns.a").state == "RETRY_WAIT"
    res = stack.call(env, "started", stack.ids(env))
    assert res.status_code == 409 and res.get_json()["error"] == "attempt_already_completed"
    assert stack.envelopes() == []  # the retry waits for its backoff: nothing dispatched early
    (timer,) = stack.timers
    assert timer.schedule_time_ms == stack.clock() + 5_000  # 5 s × 2^0, anchored on the failure event
    stack.clock.advance(5_001)
    from servo.services.timers import sweep

    sweep(stack.ctx, {"tenantId": "default", "workspaceId": WS})
    (env2,) = stack.envelopes()
    assert env2["attempt"] == 2 and env2["attemptId"] != env["attemptId"]
    assert stack.call(env2, "started", stack.ids(env2)).status_code == 200


def test_attempt_and_attempt_id_mismatches_are_409_with_expected_and_received(stack: Stack) -> None:
    _, env = start_run(stack, "ns.a", downstream=False)
    res = stack.call(env, "started", stack.ids(env, attempt=2))
    assert res.status_code == 409
    assert res.get_json() | {"message": ""} == {
        "error": "attempt_mismatch",
        "message": "",
        "expectedAttempt": 1,
        "receivedAttempt": 2,
    }
    res = stack.call(env, "started", stack.ids(env, attemptId="att_000000000000000000000000"))
    assert res.status_code == 409 and res.get_json()["error"] == "attempt_id_mismatch"
    assert res.get_json()["expectedAttemptId"] == env["attemptId"]


def test_attempt_zero_and_progress_over_100_are_400(stack: Stack) -> None:
    _, env = start_run(stack, "ns.a", downstream=False)
    assert stack.call(env, "started", stack.ids(env, attempt=0)).status_code == 400
    stack.call(env, "started", stack.ids(env))
    res = stack.call(env, "heartbeat", stack.ids(env, progressPct=101))
    assert res.status_code == 400 and res.get_json()["error"] == "invalid_argument"


def _token(stack: Stack, env: dict[str, Any], **claims: Any) -> str:
    base = {
        "task_id": env["taskId"],
        "tenant_id": "default",
        "workspace_id": WS,
        "run_id": env["runId"],
        "attempt": env["attempt"],
        "attempt_id": env["attemptId"],
    }
    token, _ = issue_task_token(
        stack.ctx.settings.token_secret, **(base | claims), now_s=stack.clock() // 1000
    )
    return token


@pytest.mark.parametrize("claims", [{"attempt": 2}, {"attempt_id": "att_ffffffffffffffffffffffff"}])
def test_a_token_of_another_attempt_is_401_and_changes_nothing(stack: Stack, claims: dict[str, Any]) -> None:
    run_id, env = start_run(stack, "ns.a", downstream=False)
    before = stack.task(run_id, "ns.a")
    res = stack.call(env, "started", stack.ids(env), token=_token(stack, env, **claims))
    assert res.status_code == 401 and res.get_json()["error"] == "invalid_token"
    assert stack.task(run_id, "ns.a") == before


def test_a_token_of_another_task_is_401_and_changes_nothing(stack: Stack) -> None:
    run_id, env = start_run(stack, "ns.a", downstream=False)
    other_run, other = start_run(stack, "ns.a", downstream=False)
    before = stack.task(run_id, "ns.a")
    res = stack.call(env, "started", stack.ids(env), token=other["taskToken"])
    assert res.status_code == 401 and res.get_json()["error"] == "invalid_token"
    assert stack.task(run_id, "ns.a") == before and stack.task(other_run, "ns.a").state == "DISPATCHED"


@pytest.mark.parametrize("scope", [{"tenant_id": "other"}, {"workspace_id": "staging"}])
def test_a_token_of_another_tenant_or_workspace_is_401_and_changes_nothing(
    stack: Stack, scope: dict[str, Any]
) -> None:
    """The token another tenant's worker holds: valid, but for its own task in its own workspace."""
    run_id, env = start_run(stack, "ns.a", downstream=False)
    before = stack.task(run_id, "ns.a")
    from servo.core.keys import encode_task_id

    foreign_task = encode_task_id("01M80000000000000000000000", "ns.a")
    token = _token(stack, env, task_id=foreign_task, run_id="01M80000000000000000000000", **scope)
    for action in ("started", "heartbeat", "completed"):
        body = stack.ids(env, outcome="SUCCEEDED") if action == "completed" else stack.ids(env)
        res = stack.call(env, action, body, token=token)
        assert res.status_code == 401 and res.get_json()["error"] == "invalid_token"
    assert stack.task(run_id, "ns.a") == before


def test_missing_or_forged_bearer_is_401(stack: Stack) -> None:
    _, env = start_run(stack, "ns.a", downstream=False)
    res = stack.client.post(f"/api/v1/tasks/{env['taskId']}/started", json=stack.ids(env))
    assert res.status_code == 401 and res.get_json()["error"] == "invalid_token"
    assert stack.call(env, "started", stack.ids(env), token=env["taskToken"][:-4] + "AAAA").status_code == 401


def test_unknown_task_is_404(stack: Stack) -> None:
    _, env = start_run(stack, "ns.a", downstream=False)
    from servo.core.keys import encode_task_id

    ghost_id = encode_task_id(env["runId"], "ns.zz")
    ghost = dict(env, taskId=ghost_id)
    res = stack.call(ghost, "started", stack.ids(env), token=_token(stack, env, task_id=ghost_id))
    assert res.status_code == 404 and res.get_json()["error"] == "task_not_found"


def test_cancel_makes_start_409_cancelled_and_heartbeat_should_cancel(stack: Stack) -> None:
    from servo.services.cancel import cancel_run

    run_id, env = start_run(stack, "ns.a")
    status, cancelled_before_start = cancel_run(stack.ctx, "default", WS, run_id, {"reason": "stop"})
    assert (status, cancelled_before_start["state"]) == (200, "CANCELLED")
    res = stack.call(env, "started", stack.ids(env))
    assert res.status_code == 409 and res.get_json()["state"] == "CANCELLED"


def test_running_task_sees_should_cancel_and_run_ends_cancelled(stack: Stack) -> None:
    from servo.services.cancel import cancel_run

    run_id, env = start_run(stack, "ns.a")
    stack.call(env, "started", stack.ids(env))
    status, answer = cancel_run(stack.ctx, "default", WS, run_id, {})
    assert (status, answer["state"]) == (202, "CANCELLING")
    hb = stack.call(env, "heartbeat", stack.ids(env)).get_json()
    assert hb["shouldCancel"] is True and hb["cancelReason"] == "user_requested"
    assert stack.task(run_id, "ns.b").state == "CANCELLED"
    # A late success never turns a cancelled run into SUCCEEDED.
    stack.call(env, "completed", stack.ids(env, outcome="SUCCEEDED"))
    assert stack.run_state(run_id) == "CANCELLED"
    assert stack.envelopes() == []


def test_completion_times_are_server_receipt_time_whatever_the_worker_says(stack: Stack) -> None:
    run_id, env = start_run(stack, "ns.a", downstream=False)
    stack.call(env, "started", stack.ids(env, startedAt="2099-01-01T00:00:00Z"))
    stack.call(env, "completed", stack.ids(env, outcome="SUCCEEDED", completedAt="1990-01-01T00:00:00Z"))
    task = stack.task(run_id, "ns.a")
    assert task.started_at == stack.clock() and task.completed_at == stack.clock()


def test_failure_of_the_last_attempt_fails_the_task_and_skips_downstream(stack: Stack) -> None:
    run_id, env = start_run(stack, "ns.a")
    stack.call(env, "started", stack.ids(env))
    error = {"category": "DATA_QUALITY", "message": "bad rows"}
    stack.call(env, "completed", stack.ids(env, outcome="FAILED", error=error))
    assert stack.task(run_id, "ns.a").state == "FAILED"
    assert {stack.task(run_id, k).state for k in ("ns.b", "ns.c")} == {"SKIPPED"}
    assert stack.run_state(run_id) == "FAILED"


def test_logs_are_write_once_and_served_by_the_runs_function(stack: Stack) -> None:
    run_id, env = start_run(stack, "ns.a", downstream=False)
    stack.call(env, "started", stack.ids(env))
    body = {"attempt": 1, "stdout": "A says hello", "stderr": ""}
    assert stack.call(env, "logs", body).status_code == 200
    assert stack.call(env, "logs", body).status_code == 200  # identical retry is a no-op
    assert stack.call(env, "logs", body | {"stdout": "other"}).status_code == 409
    runs = create_app("runs", str(ROOT / "functions/runs/main.py")).test_client()
    page = runs.get(f"/v1/workspaces/{WS}/runs/{run_id}/logs")
    assert page.status_code == 200 and b"A says hello" in page.data and b"=== stdout ===" in page.data


def test_traceparent_flows_from_trigger_to_the_dispatch_envelope(stack: Stack) -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    status, _ = trigger_run(stack.ctx, "default", WS, {"selection": ["ns.a"]}, traceparent=trace)
    assert status == 201
    (env,) = stack.envelopes()
    assert env["traceparent"] == trace


def test_a_worker_faster_than_the_dispatch_record_is_accepted_and_nothing_is_doubled(
    stack: Stack,
) -> None:
    """The controller enqueues before it records DispatchRequested+DispatchEnqueued; a worker that
    calls back inside that gap holds a token for exactly the next attempt and is accepted."""
    early: list[int] = []
    original = stack.queue.enqueue

    def enqueue_and_start_at_once(queue: str, task: Any) -> Any:
        outcome = original(queue, task)
        if task.url == stack.ctx.settings.worker_url:
            env = json.loads(task.body)
            early.append(stack.call(env, "started", stack.ids(env)).status_code)
        return outcome

    stack.queue.enqueue = enqueue_and_start_at_once  # type: ignore[method-assign]
    run_id, env = start_run(stack, "ns.a", downstream=False)
    assert early == [200]
    task = stack.task(run_id, "ns.a")
    assert (task.state, task.attempt, task.attempt_id) == ("RUNNING", 1, env["attemptId"])
    assert stack.call(env, "completed", stack.ids(env, outcome="SUCCEEDED")).status_code == 200
    assert stack.run_state(run_id) == "SUCCEEDED"
    assert stack.envelopes() == []  # the late DispatchRequested did not dispatch the attempt again


def test_a_token_for_an_attempt_beyond_the_next_is_still_refused(stack: Stack) -> None:
    run_id, env = start_run(stack, "ns.a", downstream=False)
    from servo.core.ids import attempt_id, dispatch_id

    skip = {"attempt": 3, "attempt_id": attempt_id(dispatch_id(env["runId"], "ns.a", 3))}
    res = stack.call(env, "started", stack.ids(env, attempt=3, attemptId=skip["attempt_id"]),
                     token=_token(stack, env, **skip))  # fmt: skip
    assert res.status_code == 401
    assert stack.task(run_id, "ns.a").state == "DISPATCHED"
