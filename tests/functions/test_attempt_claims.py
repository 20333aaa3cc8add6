"""One delivery runs an attempt: ``started`` claims it for its executionId (callbacks.task_started)."""

from __future__ import annotations

from tests.functions.test_callback_function import Stack, start_run
from tests.functions.test_callback_function import stack as stack


def test_a_second_delivery_of_a_started_attempt_is_refused_and_a_resent_started_is_not(stack: Stack) -> None:
    run_id, env = start_run(stack, "ns.a", downstream=False)
    first = stack.ids(env, executionId="delivery-1")
    assert stack.call(env, "started", first).status_code == 200
    # The same delivery re-sends started after a lost response: its own claim, accepted.
    assert stack.call(env, "started", first).status_code == 200
    # The queue delivers the envelope again (deadline passed, or the sweep's repair) while it runs.
    again = stack.call(env, "started", stack.ids(env, executionId="delivery-2"))
    assert again.status_code == 409
    assert again.get_json()["error"] == "attempt_already_started"
    assert stack.task(run_id, "ns.a").state == "RUNNING"


def test_an_oversized_execution_id_is_400(stack: Stack) -> None:
    _, env = start_run(stack, "ns.a", downstream=False)
    res = stack.call(env, "started", stack.ids(env, executionId="x" * 129))
    assert res.status_code == 400


def test_the_sweeps_reenqueue_of_a_stuck_dispatch_runs_once_with_the_first_delivery(stack: Stack) -> None:
    from servo.services.timers import sweep

    run_id, first = start_run(stack, "ns.a", downstream=False)
    # The first delivery is slow to reach the worker: past the repair threshold the sweep enqueues the
    # dispatch again under a fresh Cloud Task name, so both deliveries arrive.
    stack.clock.advance(10 * 60_000 + 1)
    sweep(stack.ctx, {})
    (second,) = stack.envelopes()
    assert (second["attemptId"], second["dispatchId"]) == (first["attemptId"], first["dispatchId"])
    assert stack.call(second, "started", stack.ids(second, executionId="delivery-2")).status_code == 200
    late = stack.call(first, "started", stack.ids(first, executionId="delivery-1"))
    assert late.status_code == 409 and late.get_json()["error"] == "attempt_already_started"
    assert stack.task(run_id, "ns.a").attempt == 1
