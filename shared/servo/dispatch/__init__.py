"""The TaskQueue port and its adapters (Cloud Tasks, the embedded mode's local dispatcher), and the
Transport port that carries the local stacks' hops (HTTP, or in process when both ends share one), on
threads kept from one job to the next (``ReusedThreads``, which the worker's attempts use too), and the
timer threads' sleep that only an earlier due time interrupts (``Sleeper``, the worker's ticker's too).

``CloudTasksQueue``/``cloud_tasks_client`` are imported lazily: google-cloud-tasks and grpc are slow to
import, which the embedded mode and the CLI should not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from servo.dispatch._engine import RedeliveryPolicy
from servo.dispatch._http import EnvOnceSession
from servo.dispatch._inprocess import InProcessTransport
from servo.dispatch._port import (
    EnqueueOutcome,
    HttpTask,
    QueueFull,
    QueueUnavailable,
    TaskQueue,
    validate_queue_id,
)
from servo.dispatch._reused_threads import ReusedThreads
from servo.dispatch._sleeper import Sleeper
from servo.dispatch._transport import (
    Endpoint,
    HttpTransport,
    InboundRequest,
    Reply,
    Transport,
    TransportError,
    TransportTimeout,
    json_request_body,
)
from servo.dispatch.local import LocalDispatcher

if TYPE_CHECKING:
    from servo.dispatch.cloud_tasks import CloudTasksQueue, build_task, cloud_tasks_client, queue_path

__all__ = [
    "CloudTasksQueue",
    "Endpoint",
    "EnqueueOutcome",
    "EnvOnceSession",
    "HttpTask",
    "HttpTransport",
    "InProcessTransport",
    "InboundRequest",
    "LocalDispatcher",
    "QueueFull",
    "QueueUnavailable",
    "RedeliveryPolicy",
    "Reply",
    "ReusedThreads",
    "Sleeper",
    "TaskQueue",
    "Transport",
    "TransportError",
    "TransportTimeout",
    "build_task",
    "cloud_tasks_client",
    "json_request_body",
    "queue_path",
    "validate_queue_id",
]

_LAZY = ("CloudTasksQueue", "build_task", "cloud_tasks_client", "queue_path")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from servo.dispatch import cloud_tasks

        return getattr(cloud_tasks, name)
    raise AttributeError(f"module 'servo.dispatch' has no attribute {name!r}")
