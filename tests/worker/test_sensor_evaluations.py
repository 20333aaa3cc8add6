"""The worker's ``POST /sensor-evaluations`` (automation §6.2): the sensor is called with the cursor, once
per item threading it, under the timeout; one result goes to the evaluation's result path with its token."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from servo.sdk import RunRequest, SkipReason, sensor
from servo.sdk._sensors import SensorContext, sensor_of
from servo.worker import WorkerApp, WorkerHandle, serve_app

from tests.support.http_sink import HttpSink

SECRET = "s3cret-dispatch"
EVAL = "files:v3:1"
RESULT_PATH = f"/v1/sensor-evaluations/{EVAL}/result"
release = threading.Event()


@sensor(target="ns.a")
def files(ctx: SensorContext) -> Any:
    ctx.log.info("looking after %s", ctx.cursor)
    ctx.update_cursor((ctx.cursor or "") + "+")
    if ctx.message is not None:
        return RunRequest(run_key=ctx.message.data.decode())
    return [RunRequest(run_key="a"), RunRequest(run_key="b", labels={"k": "v"})]


@sensor(target="ns.a", push=True)
def skipper(ctx: SensorContext) -> Any:
    return SkipReason("nothing new")


@sensor(target="ns.a")
def broken(ctx: SensorContext) -> Any:
    raise RuntimeError("the bucket is gone")


@sensor(target="ns.a", timeout_seconds=5)
def slow(ctx: SensorContext) -> Any:
    release.wait(30)
    return None


SENSORS = {f.__name__: sensor_of(f) for f in (files, skipper, broken, slow)}


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as s:
        yield s


@pytest.fixture
def worker(sink: HttpSink) -> Iterator[WorkerHandle]:
    handle = serve_app(
        WorkerApp({}, dispatch_secret=SECRET, worker_id="w", api_url=sink.base_url, sensors=lambda: SENSORS)
    )
    yield handle
    handle.stop()
    release.set()


def envelope(sink: HttpSink, sensor_id: str = "files", **extra: Any) -> dict[str, Any]:
    return {
        "tenantId": "acme",
        "workspaceId": "prod",
        "sensorId": sensor_id,
        "evaluationId": EVAL.replace("files", sensor_id),
        "expectedStateVersion": 3,
        "trigger": "POLL",
        "cursor": "c",
        "items": [],
        "callbackBaseUrl": sink.base_url,
        "evaluationToken": "tok",
        "timeoutSeconds": 60,
        **extra,
    }


def post(worker: WorkerHandle, body: Any, secret: str = SECRET) -> requests.Response:
    return requests.post(
        f"{worker.url}/sensor-evaluations", json=body, headers={"X-Servo-Dispatch-Secret": secret}, timeout=30
    )


def result(sink: HttpSink, sensor_id: str = "files") -> dict[str, Any]:
    [received] = sink.received(RESULT_PATH.replace("files", sensor_id))
    assert received.headers["authorization"] == "Bearer tok"
    body: dict[str, Any] = json.loads(received.body)
    return body


def test_a_poll_is_called_with_the_cursor_and_reports_its_requests_and_new_cursor(
    worker: WorkerHandle, sink: HttpSink
) -> None:
    answer = post(worker, envelope(sink))
    assert answer.status_code == 200 and answer.json()["status"] == "TRIGGERED"
    body = result(sink)
    assert body["status"] == "TRIGGERED" and body["cursorUpdated"] is True and body["cursor"] == "c+"
    assert body["runRequests"] == [{"labels": {}, "runKey": "a"}, {"labels": {"k": "v"}, "runKey": "b"}]
    assert "looking after c" in body["log"]


def test_items_are_called_in_order_threading_the_cursor(worker: WorkerHandle, sink: HttpSink) -> None:
    items = [
        {"itemId": "msg:m1", "message": {"messageId": "m1", "data": "ZjE="}},
        {"itemId": "msg:m2", "message": {"messageId": "m2", "data": "ZjI="}},
    ]
    post(worker, envelope(sink, items=items))
    body = result(sink)
    assert body["cursor"] == "c++" and body["itemsProcessed"] == 2
    assert body["runRequests"] == [
        {"labels": {}, "runKey": "f1", "itemId": "msg:m1"},
        {"labels": {}, "runKey": "f2", "itemId": "msg:m2"},
    ]


def test_a_skip_reason_is_reported_skipped(worker: WorkerHandle, sink: HttpSink) -> None:
    post(worker, envelope(sink, "skipper"))
    body = result(sink, "skipper")
    assert (
        body["status"] == "SKIPPED" and body["skipReason"] == "nothing new" and body["cursorUpdated"] is False
    )


@pytest.mark.parametrize(
    ("sensor_id", "error"),
    [("broken", "RuntimeError: the bucket is gone"), ("nope", "this worker has no sensor 'nope'")],
)
def test_a_raised_error_or_an_unknown_sensor_is_reported_error(
    worker: WorkerHandle, sink: HttpSink, sensor_id: str, error: str
) -> None:
    assert post(worker, envelope(sink, sensor_id)).status_code == 200
    assert result(sink, sensor_id) == {"status": "ERROR", "error": error}


def test_the_timeout_is_enforced(worker: WorkerHandle, sink: HttpSink) -> None:
    release.clear()
    post(worker, envelope(sink, "slow", timeoutSeconds=1))
    assert result(sink, "slow") == {"status": "ERROR", "error": "timed out after 1 s"}
    release.set()


def test_bad_requests_are_refused_and_report_nothing(worker: WorkerHandle, sink: HttpSink) -> None:
    assert post(worker, envelope(sink), secret="wrong").status_code == 401
    assert post(worker, {"sensorId": "files"}).status_code == 400
    assert post(worker, envelope(sink, callbackBaseUrl="http://127.0.0.1:1")).status_code == 400
    assert sink.received() == []


def test_a_control_plane_that_cannot_take_the_result_asks_for_redelivery(
    worker: WorkerHandle, sink: HttpSink
) -> None:
    sink.program(RESULT_PATH, [503])
    assert post(worker, envelope(sink)).status_code == 500
    assert post(worker, envelope(sink)).status_code == 200
    assert post(worker, envelope(sink)).json()["status"] == "already_reported"
