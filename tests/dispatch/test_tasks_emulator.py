"""The fixed Cloud Tasks emulator beyond the contract suite: its own API surface and process behaviour."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from servo.core.errors import InvalidInput
from servo.dev.tasks_emulator import TasksEmulator
from servo.dispatch import CloudTasksQueue, EnqueueOutcome, HttpTask, RedeliveryPolicy, cloud_tasks_client

from tests.dispatch.conftest import LOCATION, PROJECT, new_task_id
from tests.support.http_sink import HttpSink
from tests.support.tasks_emulator import fresh_queue

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(tasks_emulator: TasksEmulator) -> tasks_v2.CloudTasksClient:
    return cloud_tasks_client(tasks_emulator.address)


def _queue_name(queue: str) -> str:
    return f"projects/{PROJECT}/locations/{LOCATION}/queues/{queue}"


def _create(client: tasks_v2.CloudTasksClient, queue: str, url: str, **task: object) -> tasks_v2.Task:
    return client.create_task(
        parent=_queue_name(queue),
        task=tasks_v2.Task(http_request=tasks_v2.HttpRequest(url=url, body=b"{}"), **task),
    )


def test_get_and_delete_a_scheduled_task(client: tasks_v2.CloudTasksClient, http_sink: HttpSink) -> None:
    queue = fresh_queue()
    name = f"{_queue_name(queue)}/tasks/{new_task_id()}"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    _create(client, queue, http_sink.url("/never"), name=name, schedule_time=later)

    got = client.get_task(name=name)
    assert got.name == name
    assert got.dispatch_count == 0
    assert [t.name for t in client.list_tasks(parent=_queue_name(queue))] == [name]

    client.delete_task(name=name)
    with pytest.raises(gexc.NotFound):
        client.get_task(name=name)
    with pytest.raises(gexc.NotFound):
        client.delete_task(name=name)
    # A deleted name is tombstoned like a delivered one.
    with pytest.raises(gexc.AlreadyExists):
        _create(client, queue, http_sink.url("/never"), name=name)


def test_queues_are_auto_created_and_create_queue_reports_duplicates(
    client: tasks_v2.CloudTasksClient, http_sink: HttpSink
) -> None:
    queue = fresh_queue()
    with pytest.raises(gexc.NotFound):
        client.get_queue(name=_queue_name(queue))
    _create(client, queue, http_sink.url("/auto"))
    assert client.get_queue(name=_queue_name(queue)).state == tasks_v2.Queue.State.RUNNING

    explicit = fresh_queue()
    client.create_queue(
        parent=f"projects/{PROJECT}/locations/{LOCATION}", queue=tasks_v2.Queue(name=_queue_name(explicit))
    )
    with pytest.raises(gexc.AlreadyExists):
        client.create_queue(
            parent=f"projects/{PROJECT}/locations/{LOCATION}",
            queue=tasks_v2.Queue(name=_queue_name(explicit)),
        )
    names = [q.name for q in client.list_queues(parent=f"projects/{PROJECT}/locations/{LOCATION}")]
    assert {_queue_name(queue), _queue_name(explicit)} <= set(names)


def test_the_queue_retry_config_is_honoured(client: tasks_v2.CloudTasksClient, http_sink: HttpSink) -> None:
    queue = fresh_queue()
    client.create_queue(
        parent=f"projects/{PROJECT}/locations/{LOCATION}",
        queue=tasks_v2.Queue(
            name=_queue_name(queue),
            retry_config=tasks_v2.RetryConfig(
                max_attempts=2, min_backoff=dt.timedelta(milliseconds=50), max_backoff=dt.timedelta(seconds=1)
            ),
        ),
    )
    url = http_sink.program("/two", default_status=500)
    _create(client, queue, url)

    http_sink.wait_for(2, "/two")
    time.sleep(0.5)
    got = http_sink.received("/two")
    assert len(got) == 2
    assert 0.04 <= got[1].arrived_s - got[0].arrived_s < 0.5


def test_unlimited_attempts_are_bounded_by_the_cap(http_sink: HttpSink) -> None:
    policy = RedeliveryPolicy(min_backoff_s=0.01, max_backoff_s=0.02)
    with TasksEmulator(policy=policy, max_attempts_cap=3) as emulator:
        client = cloud_tasks_client(emulator.address)
        queue = fresh_queue()
        client.create_queue(
            parent=f"projects/{PROJECT}/locations/{LOCATION}",
            queue=tasks_v2.Queue(name=_queue_name(queue), retry_config=tasks_v2.RetryConfig(max_attempts=-1)),
        )
        url = http_sink.program("/forever", default_status=503)
        _create(client, queue, url)
        assert emulator.wait_idle(5)
    assert len(http_sink.received("/forever")) == 3


def test_max_concurrent_dispatches_limits_parallelism(
    client: tasks_v2.CloudTasksClient, http_sink: HttpSink
) -> None:
    queue = fresh_queue()
    client.create_queue(
        parent=f"projects/{PROJECT}/locations/{LOCATION}",
        queue=tasks_v2.Queue(
            name=_queue_name(queue), rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=1)
        ),
    )
    url = http_sink.program("/serial", default_delay_s=0.3)
    _create(client, queue, url)
    _create(client, queue, url)

    first, second = sorted(http_sink.wait_for(2, "/serial"), key=lambda r: r.arrived_s)
    assert second.arrived_s >= first.answered_s


def test_a_paused_queue_holds_its_tasks_until_resumed(
    client: tasks_v2.CloudTasksClient, http_sink: HttpSink
) -> None:
    queue = fresh_queue()
    client.create_queue(
        parent=f"projects/{PROJECT}/locations/{LOCATION}", queue=tasks_v2.Queue(name=_queue_name(queue))
    )
    assert client.pause_queue(name=_queue_name(queue)).state == tasks_v2.Queue.State.PAUSED
    _create(client, queue, http_sink.url("/held"))
    time.sleep(0.3)
    assert http_sink.received("/held") == []

    assert client.resume_queue(name=_queue_name(queue)).state == tasks_v2.Queue.State.RUNNING
    assert len(http_sink.wait_for(1, "/held")) == 1


def test_a_deleted_queue_drops_its_tasks(client: tasks_v2.CloudTasksClient, http_sink: HttpSink) -> None:
    queue = fresh_queue()
    _create(
        client,
        queue,
        http_sink.url("/dropped"),
        schedule_time=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.3),
    )
    client.delete_queue(name=_queue_name(queue))

    with pytest.raises(gexc.NotFound):
        client.get_queue(name=_queue_name(queue))
    time.sleep(0.5)
    assert http_sink.received("/dropped") == []


def test_non_http_tasks_and_foreign_names_are_invalid(
    client: tasks_v2.CloudTasksClient, http_sink: HttpSink
) -> None:
    queue = fresh_queue()
    with pytest.raises(gexc.InvalidArgument):
        client.create_task(parent=_queue_name(queue), task=tasks_v2.Task())
    with pytest.raises(gexc.InvalidArgument):
        _create(client, queue, http_sink.url("/x"), name=f"{_queue_name('other')}/tasks/abc")


def test_only_loopback_addresses_are_bound() -> None:
    with pytest.raises(InvalidInput):
        TasksEmulator(host="0.0.0.0")


@pytest.fixture
def emulator_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "servo.dev.tasks_emulator", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, line
        yield proc, line.rsplit(" ", 1)[1].strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_runs_as_a_process_and_stops_cleanly_on_sigterm(
    emulator_process: tuple[subprocess.Popen[str], str], http_sink: HttpSink
) -> None:
    proc, address = emulator_process
    assert address.startswith("127.0.0.1:")
    queue = CloudTasksQueue(cloud_tasks_client(address), PROJECT, LOCATION, rpc_timeout_s=5)
    task = HttpTask(task_id=new_task_id(), url=http_sink.url("/proc"), body=b"{}", headers={})
    assert queue.enqueue("default-queue", task) is EnqueueOutcome.CREATED
    assert queue.enqueue("default-queue", task) is EnqueueOutcome.ALREADY_EXISTS
    assert len(http_sink.wait_for(1, "/proc")) == 1

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_a_non_loopback_host_exits_with_an_error() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
    done = subprocess.run(
        [sys.executable, "-m", "servo.dev.tasks_emulator", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert done.returncode == 2
    assert "loopback" in done.stderr
