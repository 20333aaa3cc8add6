"""What a cancel answers when it races the run's end (issue 15 item 23).

The rule (services/cancel.py): 200 ``CANCELLED`` only when the run is cancelled; 202 ``CANCELLING`` when
the cancel is recorded but the run has not ended — running tasks that finish first keep their result,
so the run may still end SUCCEEDED or FAILED; 409 when the run had already ended (or ended before the
cancel could act) in another state. The answer never names a state the run will not have.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from functions_framework import create_app
from servo.services import callbacks
from servo.services.orchestrate import compact_workspace

from tests.functions.test_callback_function import ROOT, WS, Stack, start_run
from tests.functions.test_callback_function import stack as stack


@pytest.fixture
def cancel(stack: Stack) -> Any:
    return create_app("cancel", str(ROOT / "functions/cancel/main.py")).test_client()


def _cancel(cancel: Any, run_id: str) -> Any:
    return cancel.post(f"/v1/workspaces/{WS}/runs/{run_id}/cancel", json={"reason": "race"})


def test_a_cancel_that_loses_the_race_to_a_success_never_answers_cancelling(
    stack: Stack, cancel: Any
) -> None:
    run_id, env = start_run(stack, "ns.a", downstream=False)
    assert stack.call(env, "started", stack.ids(env)).status_code == 200
    # The success is in the ledger, not yet published, when the cancel reads the run (still RUNNING).
    silent = replace(stack.ctx, after_ledger_write=None)
    headers = {"authorization": f"Bearer {env['taskToken']}"}
    callbacks.task_completed(silent, env["taskId"], headers, stack.ids(env, outcome="SUCCEEDED"))
    res = _cancel(cancel, run_id)
    compact_workspace(stack.ctx, "default", WS)
    final = stack.run_state(run_id)
    assert final == "SUCCEEDED"
    assert res.status_code == 409 and res.get_json()["details"]["state"] == "SUCCEEDED"
    # Asked again, the answer is the same.
    assert _cancel(cancel, run_id).status_code == 409


def test_a_cancel_of_a_running_task_is_202_requested_and_the_run_may_still_succeed(
    stack: Stack, cancel: Any
) -> None:
    run_id, env = start_run(stack, "ns.a", downstream=False)
    assert stack.call(env, "started", stack.ids(env)).status_code == 200
    res = _cancel(cancel, run_id)
    assert res.status_code == 202
    body = res.get_json()
    assert body["state"] == "CANCELLING" and body["cancelRequested"] is True
    assert "may still end" in body["message"]
    # The worker finishes before it sees the cancel: its success stands, as the 202 warned.
    stack.call(env, "completed", stack.ids(env, outcome="SUCCEEDED"))
    final = stack.run_state(run_id)
    assert final in ("SUCCEEDED", "CANCELLED")
    again = _cancel(cancel, run_id).get_json()
    assert again.get("state", again.get("details", {}).get("state")) == final


def test_a_cancel_of_a_queued_run_is_200_cancelled(stack: Stack, cancel: Any) -> None:
    run_id, _ = start_run(stack, "ns.a", downstream=False)
    res = _cancel(cancel, run_id)
    assert res.status_code == 200 and res.get_json()["state"] == "CANCELLED"
    assert stack.run_state(run_id) == "CANCELLED"
    assert _cancel(cancel, run_id).status_code == 200
