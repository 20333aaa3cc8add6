from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from servo.core.ids import cloud_task_id
from servo.dev.tasks_emulator import TasksEmulator
from servo.dispatch import CloudTasksQueue, LocalDispatcher, TaskQueue, cloud_tasks_client

from tests.support.http_sink import http_sink
from tests.support.tasks_emulator import fresh_queue, tasks_emulator

__all__ = ["http_sink", "tasks_emulator"]

PROJECT = "servo-test"
LOCATION = "us-central1"


def new_task_id(kind: str = "dispatch") -> str:
    """A fresh, valid d_/t_ Cloud Task id."""
    return cloud_task_id(f"{kind}:{uuid.uuid4().hex}:a:1")


@pytest.fixture(params=["local", pytest.param("cloud_tasks", marks=pytest.mark.emulator)])
def task_queue(request: pytest.FixtureRequest) -> Iterator[TaskQueue]:
    """Every TaskQueue adapter; the contract suite runs once per adapter."""
    if request.param == "local":
        with LocalDispatcher() as dispatcher:
            yield dispatcher
    else:
        emulator: TasksEmulator = request.getfixturevalue("tasks_emulator")
        yield CloudTasksQueue(cloud_tasks_client(emulator.address), PROJECT, LOCATION, rpc_timeout_s=5.0)


@pytest.fixture(params=["local", pytest.param("cloud_tasks", marks=pytest.mark.emulator)])
def bounded_queue(request: pytest.FixtureRequest) -> Iterator[TaskQueue]:
    """Every adapter, configured to hold at most one live task per queue."""
    if request.param == "local":
        with LocalDispatcher(max_pending_per_queue=1) as dispatcher:
            yield dispatcher
    else:
        with TasksEmulator(max_tasks_per_queue=1) as emulator:
            yield CloudTasksQueue(cloud_tasks_client(emulator.address), PROJECT, LOCATION, rpc_timeout_s=5.0)


@pytest.fixture
def queue() -> str:
    return fresh_queue()
