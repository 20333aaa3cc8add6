"""The Cloud Tasks adapter of the TaskQueue port (google-cloud-tasks, real service or emulator).

Each HttpTask becomes an HTTP task named ``projects/{P}/locations/{L}/queues/{Q}/tasks/{task_id}``, so a
repeated enqueue answers ALREADY_EXISTS instead of delivering twice (contracts §5, behavior §5.3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import tasks_v2
from google.protobuf import duration_pb2, timestamp_pb2

from servo.dispatch._port import EnqueueOutcome, HttpTask, QueueFull, QueueUnavailable, validate_queue_id

if TYPE_CHECKING:
    from google.cloud.tasks_v2 import CloudTasksClient


def queue_path(project: str, location: str, queue: str) -> str:
    """The full queue resource name."""
    return f"projects/{project}/locations/{location}/queues/{validate_queue_id(queue)}"


def build_task(queue_name: str, task: HttpTask) -> tasks_v2.Task:
    """Map an HttpTask onto the Cloud Tasks ``Task`` created in ``queue_name`` (a full queue path)."""
    headers = dict(task.headers)
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    http = tasks_v2.HttpRequest(
        url=task.url, http_method=tasks_v2.HttpMethod.POST, headers=headers, body=task.body
    )
    if task.oidc_service_account is not None:
        http.oidc_token = tasks_v2.OidcToken(
            service_account_email=task.oidc_service_account,
            audience=task.oidc_audience or task.url,
        )
    out = tasks_v2.Task(name=f"{queue_name}/tasks/{task.task_id}", http_request=http)
    if task.schedule_time_ms is not None:
        seconds, millis = divmod(task.schedule_time_ms, 1000)
        out._pb.schedule_time.CopyFrom(timestamp_pb2.Timestamp(seconds=seconds, nanos=millis * 1_000_000))
    if task.dispatch_deadline_s is not None:
        out._pb.dispatch_deadline.CopyFrom(duration_pb2.Duration(seconds=task.dispatch_deadline_s))
    return out


class CloudTasksQueue:
    """TaskQueue on Cloud Tasks.

    Args:
        client: a ``tasks_v2.CloudTasksClient`` (see ``cloud_tasks_client``).
        project: the GCP project of the queues.
        location: the queues' region.
        rpc_timeout_s: overall budget of one enqueue, transport retries included.
    """

    def __init__(
        self, client: CloudTasksClient, project: str, location: str, *, rpc_timeout_s: float = 20.0
    ) -> None:
        self._client = client
        self._project = project
        self._location = location
        self._timeout = rpc_timeout_s
        # Retrying a create is safe only because the task is named: a create whose answer was lost comes
        # back as ALREADY_EXISTS on the retry.
        self._retry = gretry.Retry(
            predicate=gretry.if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded),
            initial=0.1,
            maximum=2.0,
            timeout=rpc_timeout_s,
        )

    def enqueue(self, queue: str, task: HttpTask) -> EnqueueOutcome:
        parent = queue_path(self._project, self._location, queue)
        request = tasks_v2.CreateTaskRequest(parent=parent, task=build_task(parent, task))
        details = {"queue": queue, "task_id": task.task_id}
        try:
            self._client.create_task(request=request, retry=self._retry, timeout=self._timeout)
        except gexc.AlreadyExists:
            return EnqueueOutcome.ALREADY_EXISTS
        except gexc.ResourceExhausted as exc:
            raise QueueFull(
                f"queue {queue} is throttling task creation: {exc.message}", details=details
            ) from exc
        except (gexc.GoogleAPIError, gexc.RetryError) as exc:
            raise QueueUnavailable(f"could not create task in queue {queue}: {exc}", details=details) from exc
        return EnqueueOutcome.CREATED


def cloud_tasks_client(emulator_host: str | None = None) -> CloudTasksClient:
    """Build a Cloud Tasks client: default credentials, or an insecure channel to ``emulator_host``."""
    if emulator_host is None:
        return tasks_v2.CloudTasksClient()
    import grpc
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(emulator_host)
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
