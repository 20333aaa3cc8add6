"""CloudTasksQueue: the HttpTask -> tasks_v2.Task mapping and the error mapping."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from servo.core.ids import cloud_task_id
from servo.dispatch import (
    CloudTasksQueue,
    EnqueueOutcome,
    HttpTask,
    QueueFull,
    QueueUnavailable,
    build_task,
    cloud_tasks_client,
    queue_path,
)

QUEUE = "projects/p1/locations/europe-west1/queues/workers"
TASK_ID = cloud_task_id("dispatch:run1:extract:1")


def _http_task(**kw: Any) -> HttpTask:
    fields: dict[str, Any] = {
        "task_id": TASK_ID,
        "url": "https://worker.example/dispatch",
        "body": b'{"a":1}',
        "headers": {"X-Servo-Dispatch-Secret": "s"},
    }
    fields.update(kw)
    return HttpTask(**fields)


def test_queue_path_and_deterministic_task_name() -> None:
    assert queue_path("p1", "europe-west1", "workers") == QUEUE
    task = build_task(QUEUE, _http_task())
    assert TASK_ID == "d_cxtoltqhbncw6nevn7hy53kqn6"  # contracts §5 example
    assert task.name == f"{QUEUE}/tasks/d_cxtoltqhbncw6nevn7hy53kqn6"


def test_http_request_is_a_post_with_body_and_json_content_type() -> None:
    task = build_task(QUEUE, _http_task())
    assert task.http_request.url == "https://worker.example/dispatch"
    assert task.http_request.http_method == tasks_v2.HttpMethod.POST
    assert task.http_request.body == b'{"a":1}'
    assert dict(task.http_request.headers) == {
        "X-Servo-Dispatch-Secret": "s",
        "Content-Type": "application/json",
    }


def test_a_content_type_of_the_task_is_kept() -> None:
    task = build_task(QUEUE, _http_task(headers={"content-type": "text/plain"}))
    assert dict(task.http_request.headers) == {"content-type": "text/plain"}


def test_oidc_token_carries_service_account_and_audience() -> None:
    task = build_task(
        QUEUE,
        _http_task(oidc_service_account="tasks@p1.iam.gserviceaccount.com", oidc_audience="https://aud"),
    )
    assert task.http_request.oidc_token.service_account_email == "tasks@p1.iam.gserviceaccount.com"
    assert task.http_request.oidc_token.audience == "https://aud"


def test_oidc_audience_defaults_to_the_url_and_is_absent_without_a_service_account() -> None:
    with_sa = build_task(QUEUE, _http_task(oidc_service_account="sa@p1.iam.gserviceaccount.com"))
    assert with_sa.http_request.oidc_token.audience == "https://worker.example/dispatch"
    assert not build_task(QUEUE, _http_task())._pb.http_request.HasField("oidc_token")


def test_schedule_time_is_exact_to_the_millisecond() -> None:
    task = build_task(QUEUE, _http_task(schedule_time_ms=1_705_340_400_123))
    assert task._pb.schedule_time.seconds == 1_705_340_400
    assert task._pb.schedule_time.nanos == 123_000_000
    assert task.schedule_time == dt.datetime(2024, 1, 15, 17, 40, 0, 123000, tzinfo=dt.UTC)


def test_dispatch_deadline_is_mapped_and_unset_fields_stay_unset() -> None:
    assert build_task(QUEUE, _http_task(dispatch_deadline_s=1800)).dispatch_deadline == dt.timedelta(
        seconds=1800
    )
    bare = build_task(QUEUE, _http_task())._pb
    assert not bare.HasField("schedule_time")
    assert not bare.HasField("dispatch_deadline")


class _Client:
    """Stands in for CloudTasksClient's one method; records requests and raises what it is told to."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.requests: list[tasks_v2.CreateTaskRequest] = []

    def create_task(self, request: tasks_v2.CreateTaskRequest, **_: Any) -> tasks_v2.Task:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return request.task


def test_enqueue_sends_the_built_task_to_the_queue() -> None:
    client = _Client()
    queue = CloudTasksQueue(client, "p1", "europe-west1")  # type: ignore[arg-type]
    assert queue.enqueue("workers", _http_task()) is EnqueueOutcome.CREATED
    [request] = client.requests
    assert request.parent == QUEUE
    assert request.task == build_task(QUEUE, _http_task())


def test_already_exists_is_success() -> None:
    queue = CloudTasksQueue(_Client(gexc.AlreadyExists("dup")), "p", "l")  # type: ignore[arg-type]
    assert queue.enqueue("q", _http_task()) is EnqueueOutcome.ALREADY_EXISTS


def test_resource_exhausted_is_queue_full() -> None:
    cause = gexc.ResourceExhausted("quota")
    queue = CloudTasksQueue(_Client(cause), "p", "l")  # type: ignore[arg-type]
    with pytest.raises(QueueFull) as info:
        queue.enqueue("q", _http_task())
    assert info.value.__cause__ is cause
    assert info.value.retryable is True
    assert info.value.details == {"queue": "q", "task_id": TASK_ID}


@pytest.mark.parametrize(
    "cause",
    [
        gexc.PermissionDenied("no"),
        gexc.NotFound("no queue"),
        gexc.InternalServerError("boom"),
        gexc.ServiceUnavailable("down"),
        gexc.InvalidArgument("bad"),
        gexc.RetryError("gave up", cause=gexc.ServiceUnavailable("down")),
    ],
)
def test_other_api_errors_are_queue_unavailable(cause: Exception) -> None:
    queue = CloudTasksQueue(_Client(cause), "p", "l")  # type: ignore[arg-type]
    with pytest.raises(QueueUnavailable) as info:
        queue.enqueue("q", _http_task())
    assert info.value.__cause__ is cause
    assert info.value.retryable is True


@pytest.mark.emulator
def test_an_unreachable_endpoint_is_queue_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = CloudTasksQueue(cloud_tasks_client(f"127.0.0.1:{port}"), "p", "l", rpc_timeout_s=0.5)
    with pytest.raises(QueueUnavailable):
        queue.enqueue("q", _http_task())
