"""One run-request path (automation §6.3, scenarios R1–R3): a schedule tick and TriggerRun meet at the
same run_key reservation, so one key and payload is one run from any source, and a conflict is recorded
on the source, never a second run. (R4, an outcome for every request after a crash at any write, is
tests/services/test_schedule_crashes.py; R5 is in test_schedule_sweep.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from servo.core.errors import Conflict
from servo.core.events import RunTriggered
from servo.services.schedule_sweep import sweep_schedules
from servo.services.trigger import trigger_run

from tests.services.test_schedule_sweep import MINUTE, T0, T, W, deploy, events_of, minutely, ticks
from tests.support.context import FakeClock, make_context

EPOCH = (T0 + MINUTE) // 1000  # the first instant the minutely schedule fires at after T0
TICK_KEY = f"sched:every:{EPOCH}"
TICK_PAYLOAD: dict[str, Any] = {"selection": ["ns.a", "ns.b"]}  # the schedule's target, no labels


@pytest.fixture
def env(tmp_path: Path) -> tuple[Any, FakeClock]:
    clock = FakeClock(T0 - 1000)
    ctx, _, _ = make_context(tmp_path, clock=clock)
    return ctx, clock


def _sweep_at_the_tick(ctx: Any, clock: Any) -> dict[str, Any]:
    clock.now_ms = T0 + MINUTE + 30_000
    sweep_schedules(ctx, T, W)
    sweep_schedules(ctx, T, W)  # the request processor's outcome is folded by the next sweep
    (tick,) = [t for t in ticks(ctx) if t["tickId"] == f"every:{EPOCH}"]
    return tick


def test_R1_one_run_key_and_payload_from_trigger_run_and_a_tick_is_one_run(env: Any) -> None:
    ctx, clock = env
    deploy(ctx, minutely())
    status, created = trigger_run(ctx, T, W, {**TICK_PAYLOAD, "runKey": TICK_KEY})
    assert status == 201
    tick = _sweep_at_the_tick(ctx, clock)
    assert tick["runKey"] == TICK_KEY
    assert tick["requestStatus"] == "EXISTING" and tick["runId"] == created["runId"]
    runs_with_key = [e for e in events_of(ctx, RunTriggered) if e.run_key == TICK_KEY]
    assert [e.run_id for e in runs_with_key] == [created["runId"]]
    # And the other way round: TriggerRun after the tick answers the tick's run.
    again_status, again = trigger_run(ctx, T, W, {**TICK_PAYLOAD, "runKey": TICK_KEY})
    assert (again_status, again["runId"], again["created"]) == (200, created["runId"], False)


def test_R2_the_same_key_with_another_payload_is_a_durable_conflict_on_the_tick_never_a_second_run(
    env: Any,
) -> None:
    ctx, clock = env
    deploy(ctx, minutely())
    status, first = trigger_run(ctx, T, W, {"selection": ["ns.c"], "runKey": TICK_KEY})
    assert status == 201
    tick = _sweep_at_the_tick(ctx, clock)
    assert tick["status"] == "TRIGGERED" and tick["requestStatus"] == "CONFLICT"
    assert tick.get("runId") in (None, first["runId"])  # never a run of its own
    runs_with_key = [e for e in events_of(ctx, RunTriggered) if e.run_key == TICK_KEY]
    assert [e.run_id for e in runs_with_key] == [first["runId"]]
    # Durable: later sweeps keep the conflict and still make no run.
    clock.now_ms += 5 * MINUTE
    sweep_schedules(ctx, T, W)
    (kept,) = [t for t in ticks(ctx) if t["tickId"] == f"every:{EPOCH}"]
    assert kept["requestStatus"] == "CONFLICT"
    assert len([e for e in events_of(ctx, RunTriggered) if e.run_key == TICK_KEY]) == 1
    # TriggerRun with the tick's payload under that key keeps its 409.
    with pytest.raises(Conflict) as refused:
        trigger_run(ctx, T, W, {**TICK_PAYLOAD, "runKey": TICK_KEY})
    assert refused.value.http_status == 409
    assert refused.value.details["conflictType"] == "RUN_KEY_FINGERPRINT_MISMATCH"
    assert refused.value.details["existingRunId"] == first["runId"]


def test_R3_two_requests_with_one_run_key_and_payload_but_other_idempotency_keys_are_one_run(
    env: Any,
) -> None:
    ctx, _ = env
    deploy(ctx, minutely())
    body = {**TICK_PAYLOAD, "runKey": "nightly-2027-01-15"}
    first = trigger_run(ctx, T, W, body, idempotency_key="client-a")
    second = trigger_run(ctx, T, W, body, idempotency_key="client-b")
    assert (first[0], second[0]) == (201, 200)
    assert first[1]["runId"] == second[1]["runId"]
    assert len([e for e in events_of(ctx, RunTriggered) if e.run_key == "nightly-2027-01-15"]) == 1
