"""Fixtures: a fake control plane and a WorkerApp served over real HTTP, plus envelope builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import requests
from servo.core.keys import encode_task_id
from servo.worker import WorkerApp, WorkerHandle, serve_app

from tests.worker.fake_control_plane import FakeControlPlane

SECRET = "s3cret-dispatch"
TENANT = "acme"
WORKSPACE = "prod"
RUN_ID = "01JAAAAAAAAAAAAAAAAAAAAAAA"


@pytest.fixture
def plane() -> Iterator[FakeControlPlane]:
    fake = FakeControlPlane().start()
    yield fake
    fake.stop()


Serve = Callable[..., WorkerHandle]


@pytest.fixture
def serve(plane: FakeControlPlane) -> Iterator[Serve]:
    handles: list[WorkerHandle] = []

    def start(assets: Mapping[str, Any], **options: Any) -> WorkerHandle:
        settings: dict[str, Any] = {
            "dispatch_secret": SECRET,
            "worker_id": "worker-1",
            "tenant_id": TENANT,
            "workspace_id": WORKSPACE,
            "api_url": plane.url,
            "heartbeat_interval_s": 0.05,
            "cancel_grace_s": 3.0,
            "callback_tries": 3,
            "callback_backoff_s": 0.01,
        }
        settings.update(options)
        handle = serve_app(WorkerApp(assets, **settings))
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


def task_id(task_key: str) -> str:
    return encode_task_id(RUN_ID, task_key)


def envelope(
    plane: FakeControlPlane,
    task_key: str,
    *,
    dispatch_id: str | None = None,
    attempt: int = 1,
    partition_key: str | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenantId": TENANT,
        "workspaceId": WORKSPACE,
        "taskId": task_id(task_key),
        "taskKey": task_key,
        "runId": RUN_ID,
        "attempt": attempt,
        "attemptId": f"att-{task_key}-{attempt}",
        "dispatchId": dispatch_id or f"dis-{task_key}-{attempt}",
        "heartbeatTimeoutSec": 90,
        "workerQueue": "default-queue",
        "callbackBaseUrl": plane.url,
        "taskToken": f"token-{task_key}",
        "tokenExpiresAt": "2099-01-01T00:00:00Z",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "payload": payload or {},
    }
    if partition_key is not None:
        body["partitionKey"] = partition_key
    return body


def dispatch(worker: WorkerHandle, body: Any, *, secret: str | None = SECRET, **kw: Any) -> requests.Response:
    headers = {"X-Servo-Dispatch-Secret": secret} if secret is not None else {}
    return requests.post(f"{worker.url}/dispatch", json=body, headers=headers, timeout=30, **kw)
