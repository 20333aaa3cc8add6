"""Running assets through the worker against a fake control plane over real HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Annotated, Any

import pytest
from servo.errors import DataQualityError
from servo.sdk import AssetIn, asset

from tests.worker.conftest import Serve, dispatch, envelope
from tests.worker.fake_control_plane import FakeControlPlane

CANCEL = {
    "acknowledged": True,
    "shouldCancel": True,
    "cancelReason": "user_requested",
    "serverTime": "2026-01-01T00:00:00Z",
}


@asset(namespace="demo")
def hello(ctx: Any) -> dict[str, Any]:
    print(f"hello from {ctx.task_key} attempt {ctx.attempt}")
    ctx.report_progress("halfway", 50)
    ctx.add_metadata(source="unit")
    time.sleep(0.3)
    return {"rows_seen": 3, "row_count": 3}


@asset(namespace="demo")
def broken(ctx: Any) -> None:
    print("about to fail")
    raise ValueError("bad input row 7")


@asset(namespace="demo")
def dirty(ctx: Any) -> None:
    raise DataQualityError("null ids in 4 rows")


@asset(namespace="demo")
def patient(ctx: Any) -> str:
    for _ in range(400):
        if ctx.is_cancelled():
            raise RuntimeError("stopping: cancelled")
        time.sleep(0.01)
    return "finished"


@asset(namespace="demo")
def polite(ctx: Any) -> None:
    while not ctx.is_cancelled():
        time.sleep(0.01)
    print("noticed the cancel")


@asset(namespace="demo")
def upstream(ctx: Any) -> dict[str, Any]:
    return {"rows": 10}


@asset(namespace="demo")
def downstream(ctx: Any, up: Annotated[dict[str, Any], AssetIn("demo.upstream")]) -> dict[str, Any]:
    return {"seen": up["metadata"]["rows"], "from": up["materializationId"]}


@asset(namespace="demo")
async def later(ctx: Any) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    print("async says hi")
    return {"async": True}


@asset(namespace="demo")
def garbled(ctx: Any) -> None:
    print("before \ud800 after")
    raise ValueError("bad row \udcff")


def _chatty(name: str) -> Any:
    def body(ctx: Any) -> None:
        for i in range(30):
            print(f"{name} line {i}")
            time.sleep(0.002)

    body.__name__ = name
    return asset(namespace="demo")(body)


ASSETS = {
    "demo.hello": hello,
    "demo.broken": broken,
    "demo.dirty": dirty,
    "demo.patient": patient,
    "demo.polite": polite,
    "demo.upstream": upstream,
    "demo.downstream": downstream,
    "demo.later": later,
    "demo.garbled": garbled,
    "demo.left": _chatty("left"),
    "demo.right": _chatty("right"),
}


def test_success_reports_in_order_with_logs_before_completed(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve(ASSETS)
    response = dispatch(worker, envelope(plane, "demo.hello"))
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "SUCCEEDED"
    actions = plane.actions()
    assert actions[0] == "started"
    assert actions[-2:] == ["logs", "completed"]
    beats = actions[1:-2]
    assert beats and set(beats) == {"heartbeat"}
    assert "hello from demo.hello attempt 1" in plane.output()
    assert plane.of("logs")[0].body["attempt"] == 1
    assert any(
        c.body.get("message") == "halfway" and c.body.get("progressPct") == 50 for c in plane.of("heartbeat")
    )
    completed = plane.of("completed")[0].body
    assert completed["outcome"] == "SUCCEEDED"
    assert completed["output"]["rowCount"] == 3
    assert completed["output"]["metadata"] == {"source": "unit", "rows_seen": 3, "row_count": 3}
    assert len(completed["output"]["materializationId"]) == 26
    assert "error" not in completed


def test_user_exception_is_failed_user_code_retryable_with_stack(
    serve: Serve, plane: FakeControlPlane
) -> None:
    worker = serve(ASSETS)
    assert dispatch(worker, envelope(plane, "demo.broken")).status_code == 200
    error = plane.of("completed")[0].body["error"]
    assert plane.of("completed")[0].body["outcome"] == "FAILED"
    assert error["category"] == "USER_CODE"
    assert error["retryable"] is True
    assert "bad input row 7" in error["message"]
    assert "ValueError" in error["stackTrace"] and "def broken" not in error["stackTrace"]
    assert "in broken" in error["stackTrace"]
    assert "about to fail" in plane.output()


def test_data_quality_error_is_not_retryable(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve(ASSETS)
    dispatch(worker, envelope(plane, "demo.dirty"))
    error = plane.of("completed")[0].body["error"]
    assert error["category"] == "DATA_QUALITY"
    assert error["retryable"] is False


def test_should_cancel_stops_the_asset_and_reports_cancelled(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve(ASSETS)
    plane.on(
        "heartbeat",
        lambda call, n: (
            (200, {"acknowledged": True, "shouldCancel": n >= 2, "serverTime": "2026-01-01T00:00:00Z"})
            if n >= 2
            else None
        ),
    )
    started = time.monotonic()
    response = dispatch(worker, envelope(plane, "demo.patient"))
    assert time.monotonic() - started < 3.0  # the asset would take 4 s uncancelled
    assert response.json()["outcome"] == "CANCELLED"
    completed = plane.of("completed")[0].body
    assert completed["outcome"] == "CANCELLED"
    assert completed["error"]["category"] == "CANCELLED"
    assert "output" not in completed


def test_is_cancelled_is_observable_and_a_clean_return_is_still_cancelled(
    serve: Serve, plane: FakeControlPlane
) -> None:
    worker = serve(ASSETS)
    plane.on(
        "heartbeat",
        lambda call, n: (
            200,
            {"acknowledged": True, "shouldCancel": True, "serverTime": "2026-01-01T00:00:00Z"},
        ),
    )
    assert dispatch(worker, envelope(plane, "demo.polite")).json()["outcome"] == "CANCELLED"
    assert "noticed the cancel" in plane.output()


def test_410_on_heartbeat_stops_the_attempt(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve(ASSETS)
    plane.on(
        "heartbeat", lambda call, n: (410, {"error": "task_expired", "message": "gone", "state": "FAILED"})
    )
    started = time.monotonic()
    response = dispatch(worker, envelope(plane, "demo.patient"))
    assert time.monotonic() - started < 3.0
    assert response.status_code == 200
    assert response.json()["outcome"] == "CANCELLED"
    assert plane.actions().count("heartbeat") == 1  # no heartbeats after the 410


def test_timeout_fails_with_category_timeout_retryable(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve(ASSETS)
    response = dispatch(worker, envelope(plane, "demo.patient", payload={"timeoutSeconds": 0.2}))
    assert response.json()["outcome"] == "FAILED"
    error = plane.of("completed")[0].body["error"]
    assert error["category"] == "TIMEOUT"
    assert error["retryable"] is True


def test_an_asset_ignoring_the_cancel_is_abandoned_after_the_grace(
    serve: Serve, plane: FakeControlPlane
) -> None:
    stuck = threading.Event()

    @asset(namespace="demo")
    def deaf(ctx: Any) -> None:
        stuck.wait(10)

    worker = serve({"demo.deaf": deaf}, cancel_grace_s=0.2)
    response = dispatch(worker, envelope(plane, "demo.deaf", payload={"timeoutSeconds": 0.1}))
    stuck.set()
    assert response.json()["outcome"] == "FAILED"
    assert plane.of("completed")[0].body["error"]["category"] == "TIMEOUT"


def test_concurrent_tasks_each_get_only_their_own_output(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve(ASSETS)
    answers: dict[str, int] = {}

    def run(key: str) -> None:
        answers[key] = dispatch(worker, envelope(plane, key)).status_code

    threads = [threading.Thread(target=run, args=(k,)) for k in ("demo.left", "demo.right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {"demo.left": 200, "demo.right": 200}
    from tests.worker.conftest import task_id

    logs = {key: plane.output(task_id(key)) for key in ("demo.left", "demo.right")}
    assert logs["demo.left"] == "".join(f"left line {i}\n" for i in range(30))
    assert logs["demo.right"] == "".join(f"right line {i}\n" for i in range(30))


def test_duplicate_in_flight_dispatch_is_503_with_retry_after(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve(ASSETS)
    first: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: first.update(r=dispatch(worker, envelope(plane, "demo.hello"))))
    thread.start()
    plane.wait_for("started")
    again = dispatch(worker, envelope(plane, "demo.hello"))
    thread.join()
    assert again.status_code == 503
    assert again.headers["Retry-After"] == "1"
    assert first["r"].status_code == 200
    # Once reported, a redelivery of the same dispatch is acknowledged without running again.
    replay = dispatch(worker, envelope(plane, "demo.hello"))
    assert replay.status_code == 200
    assert plane.actions().count("started") == 1


def test_snake_case_legacy_envelope_without_task_id(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve(ASSETS)
    camel = envelope(plane, "demo.upstream")
    del camel["taskId"]
    snake = {
        "".join("_" + ch.lower() if ch.isupper() else ch for ch in key): value for key, value in camel.items()
    }
    assert "task_key" in snake and "callback_base_url" in snake
    response = dispatch(worker, snake)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "SUCCEEDED"
    # Without a taskId the callbacks address the task by its key (legacy workers).
    assert {c.task_id for c in plane.calls} == {"demo.upstream"}


def test_upstream_output_reaches_the_downstream_argument(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve(ASSETS)
    dispatch(worker, envelope(plane, "demo.upstream"))
    up_output = plane.of("completed")[0].body["output"]
    payload = {"upstream": {"demo.upstream": up_output}}
    assert dispatch(worker, envelope(plane, "demo.downstream", payload=payload)).status_code == 200
    down = plane.of("completed")[1].body
    assert down["outcome"] == "SUCCEEDED", down
    assert down["output"]["metadata"] == {"seen": 10, "from": up_output["materializationId"]}


def test_async_assets_run_and_are_captured(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve(ASSETS)
    assert dispatch(worker, envelope(plane, "demo.later")).json()["outcome"] == "SUCCEEDED"
    assert "async says hi" in plane.output()
    assert plane.of("completed")[0].body["output"]["metadata"] == {"async": True}


@pytest.mark.parametrize("status", [503, 500])
def test_completed_is_retried_on_5xx(serve: Serve, plane: FakeControlPlane, status: int) -> None:
    worker = serve(ASSETS)
    plane.on("completed", lambda call, n: (status, {"error": "x", "message": "later"}) if n == 1 else None)
    assert dispatch(worker, envelope(plane, "demo.upstream")).status_code == 200
    assert plane.actions().count("completed") == 2


@asset(namespace="demo")
def talker(ctx: Any) -> None:
    print("early words", flush=True)
    while not ctx.is_cancelled():
        time.sleep(0.01)


@asset(namespace="demo")
def deaf(ctx: Any) -> None:
    print("not listening", flush=True)
    time.sleep(30)


def test_output_is_uploaded_while_the_asset_runs(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve({"demo.talker": talker}, log_flush_interval_s=0.1)
    stop = threading.Event()
    plane.on(
        "heartbeat",
        lambda call, n: (200, CANCEL) if stop.is_set() else None,
    )
    answers: list[int] = []
    thread = threading.Thread(
        target=lambda: answers.append(dispatch(worker, envelope(plane, "demo.talker")).status_code)
    )
    thread.start()
    plane.wait_for("logs")
    assert plane.output() == "early words\n"
    assert not plane.of("completed")  # still running
    stop.set()
    thread.join(20)
    assert answers == [200]
    assert plane.of("completed")[0].body["outcome"] == "CANCELLED"


def test_an_abandoned_attempt_keeps_its_output(serve: Serve, plane: FakeControlPlane) -> None:
    # A timeout the asset ignores: after the grace the attempt is reported and its output still sent.
    worker = serve({"demo.deaf": deaf}, cancel_grace_s=0.2)
    response = dispatch(worker, envelope(plane, "demo.deaf", payload={"timeoutSeconds": 0.2}))
    assert response.json()["outcome"] == "FAILED"
    assert plane.output() == "not listening\n"
    assert plane.actions()[-2:] == ["logs", "completed"]


def test_reading_an_upstream_without_output_fails_in_plain_words(
    serve: Serve, plane: FakeControlPlane
) -> None:
    worker = serve(ASSETS)
    assert dispatch(worker, envelope(plane, "demo.downstream")).json()["outcome"] == "FAILED"
    error = plane.of("completed")[0].body["error"]
    assert (error["category"], error["retryable"]) == ("CONFIGURATION", False)
    assert error["message"] == (
        "upstream demo.upstream has no successful materialization to read 'metadata' from: "
        "run it first (`servo run demo.upstream`), or run both (`--include-upstream`)"
    )
    assert "UpstreamNotMaterialized" in plane.output()  # the traceback, in the log


def test_lone_surrogates_an_asset_prints_or_returns_reach_the_control_plane_as_valid_text(
    serve: Serve, plane: FakeControlPlane
) -> None:
    # The control plane refuses text with no UTF-8 form (400): the logs and the completion would be lost.
    worker = serve(ASSETS)
    response = dispatch(worker, envelope(plane, "demo.garbled"))
    assert response.status_code == 200, response.text
    assert "before \ufffd after" in plane.output()
    (completed,) = plane.of("completed")
    assert completed.body["outcome"] == "FAILED"
    assert "bad row \ufffd" in completed.body["error"]["message"]
    for call in (*plane.of("logs"), completed):
        json.dumps(call.body, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate


def _voluntary_switches(thread: threading.Thread) -> int:
    with open(f"/proc/self/task/{thread.native_id}/status") as status:
        return int(next(x for x in status if x.startswith("voluntary_ctxt_switches:")).split()[1])


def test_the_request_thread_sleeps_while_its_asset_runs_rather_than_polling(plane: FakeControlPlane) -> None:
    # It looked for a cancel every 50 ms: twenty wake-ups a second per attempt in flight. A cancel
    # (or the asset's end) wakes it instead.
    from servo.core.protocol import DispatchEnvelope
    from servo.dispatch import HttpTransport
    from servo.worker import RunnerConfig, run_attempt

    inside, release = threading.Event(), threading.Event()

    @asset(namespace="demo")
    def sleeper(ctx: Any) -> None:
        inside.set()
        release.wait(30)

    env = DispatchEnvelope.from_json(envelope(plane, "demo.sleeper"))
    config = RunnerConfig(worker_id="worker-1", heartbeat_interval_s=3600)
    results: list[Any] = []
    transport = HttpTransport()
    waiter = threading.Thread(target=lambda: results.append(run_attempt(env, sleeper, transport, config)))
    waiter.start()
    try:
        assert inside.wait(10)
        before = _voluntary_switches(waiter)
        time.sleep(0.3)  # room for a polling thread to show itself (the correct one never wakes)
        woke = _voluntary_switches(waiter) - before
    finally:
        release.set()
        waiter.join(20)
    assert woke <= 1
    assert results[0].outcome == "SUCCEEDED"
