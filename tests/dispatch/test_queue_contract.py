"""The TaskQueue contract, run against LocalDispatcher and CloudTasksQueue + the fixed emulator.

Real time throughout (schedule offsets of 100-300 ms), real HTTP deliveries into an HttpSink.
"""

from __future__ import annotations

import threading
import time

import pytest
from servo.core.errors import InvalidId
from servo.dispatch import EnqueueOutcome, HttpTask, QueueFull, TaskQueue

from tests.dispatch.conftest import new_task_id
from tests.support.http_sink import HttpSink
from tests.support.tasks_emulator import fresh_queue

QUIET_S = 0.4  # how long "nothing more arrives" is watched for


def _task(url: str, **kw: object) -> HttpTask:
    fields: dict[str, object] = {
        "task_id": new_task_id(),
        "url": url,
        "body": b'{"hello":"world"}',
        "headers": {"Content-Type": "application/json"},
    }
    fields.update(kw)
    return HttpTask(**fields)  # type: ignore[arg-type]


def test_task_is_delivered_with_body_and_headers_intact(
    task_queue: TaskQueue, queue: str, http_sink: HttpSink
) -> None:
    body = '{"runId":"r1","taskKey":"a.b","payload":{"ü":[1,2]}}'.encode()
    task = _task(
        http_sink.url("/dispatch"),
        body=body,
        headers={
            "Content-Type": "application/json",
            "X-Servo-Dispatch-Secret": "s3cret",
            "traceparent": "00-a",
        },
    )

    assert task_queue.enqueue(queue, task) is EnqueueOutcome.CREATED

    [got] = http_sink.wait_for(1, "/dispatch")
    assert got.method == "POST"
    assert got.body == body
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-servo-dispatch-secret"] == "s3cret"
    assert got.headers["traceparent"] == "00-a"
    assert got.headers["x-cloudtasks-taskname"] == task.task_id
    assert got.headers["x-cloudtasks-queuename"] == queue


def test_same_name_twice_is_already_exists_and_delivered_once(
    task_queue: TaskQueue, queue: str, http_sink: HttpSink
) -> None:
    task = _task(http_sink.url("/once"))

    assert task_queue.enqueue(queue, task) is EnqueueOutcome.CREATED
    assert task_queue.enqueue(queue, task) is EnqueueOutcome.ALREADY_EXISTS
    http_sink.wait_for(1, "/once")
    # After delivery the name is tombstoned, as on Cloud Tasks.
    assert task_queue.enqueue(queue, task) is EnqueueOutcome.ALREADY_EXISTS
    time.sleep(QUIET_S)
    assert len(http_sink.received("/once")) == 1


def test_concurrent_enqueuers_of_one_name_yield_one_delivery(
    task_queue: TaskQueue, queue: str, http_sink: HttpSink
) -> None:
    task = _task(http_sink.url("/race"))
    barrier = threading.Barrier(8)
    outcomes: list[EnqueueOutcome] = []
    lock = threading.Lock()

    def enqueue() -> None:
        barrier.wait()
        outcome = task_queue.enqueue(queue, task)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    assert sorted(o.value for o in outcomes) == ["ALREADY_EXISTS"] * 7 + ["CREATED"]
    http_sink.wait_for(1, "/race")
    time.sleep(QUIET_S)
    assert len(http_sink.received("/race")) == 1


def test_future_schedule_time_is_not_delivered_before_it(
    task_queue: TaskQueue, queue: str, http_sink: HttpSink
) -> None:
    schedule_ms = int(time.time() * 1000) + 300
    task_queue.enqueue(queue, _task(http_sink.url("/later"), schedule_time_ms=schedule_ms))

    [got] = http_sink.wait_for(1, "/later", timeout=5)
    assert got.arrived_s * 1000 >= schedule_ms
    assert got.arrived_s * 1000 < schedule_ms + 2000


def test_failing_receiver_is_retried_with_growing_gaps(
    task_queue: TaskQueue, queue: str, http_sink: HttpSink
) -> None:
    url = http_sink.program("/flaky", [500, 500, 200])
    task_queue.enqueue(queue, _task(url))

    got = http_sink.wait_for(3, "/flaky", timeout=10)
    time.sleep(QUIET_S)
    got = http_sink.received("/flaky")
    assert [r.status for r in got] == [500, 500, 200]
    first_gap = got[1].arrived_s - got[0].arrived_s
    second_gap = got[2].arrived_s - got[1].arrived_s
    assert first_gap >= 0.09  # the minimum backoff
    assert second_gap - first_gap > 0.04  # backoff doubled: 0.1 s then 0.2 s, plus scheduling noise
    assert [r.headers["x-cloudtasks-taskretrycount"] for r in got] == ["0", "1", "2"]


def test_hung_receiver_times_out_at_the_dispatch_deadline_and_is_retried(
    task_queue: TaskQueue, queue: str, http_sink: HttpSink
) -> None:
    url = http_sink.program("/hung", delays=[2.5])
    task_queue.enqueue(queue, _task(url, dispatch_deadline_s=1))

    assert http_sink.wait_arrived(2, "/hung", timeout=5) == 2
    [first, second] = sorted(http_sink.wait_for(2, "/hung", timeout=5), key=lambda r: r.arrived_s)
    assert 1.0 <= second.arrived_s - first.arrived_s < 2.4


def test_different_names_are_delivered_in_parallel(
    task_queue: TaskQueue, queue: str, http_sink: HttpSink
) -> None:
    url = http_sink.program("/slow", default_delay_s=0.6)
    task_queue.enqueue(queue, _task(url))
    task_queue.enqueue(queue, _task(url))

    first, second = sorted(http_sink.wait_for(2, "/slow", timeout=5), key=lambda r: r.arrived_s)
    assert second.arrived_s < first.answered_s  # the two deliveries overlapped in time


def test_queues_are_independent(task_queue: TaskQueue, http_sink: HttpSink) -> None:
    queue_a, queue_b = fresh_queue("a"), fresh_queue("b")
    failing = http_sink.program("/a", default_status=500)
    task_queue.enqueue(queue_a, _task(failing))
    http_sink.wait_for(2, "/a")

    # A name is scoped to its queue, and queue a's failing task does not hold up queue b.
    shared_id = new_task_id()
    ok = http_sink.url("/b")
    assert task_queue.enqueue(queue_a, _task(ok, task_id=shared_id)) is EnqueueOutcome.CREATED
    assert task_queue.enqueue(queue_b, _task(ok, task_id=shared_id)) is EnqueueOutcome.CREATED
    got = http_sink.wait_for(2, "/b", timeout=5)
    assert [r.headers["x-cloudtasks-queuename"] for r in got].count(queue_b) == 1


def test_a_full_queue_raises_queue_full(bounded_queue: TaskQueue, queue: str, http_sink: HttpSink) -> None:
    later = int(time.time() * 1000) + 60_000
    bounded_queue.enqueue(queue, _task(http_sink.url("/x"), schedule_time_ms=later))

    with pytest.raises(QueueFull) as info:
        bounded_queue.enqueue(queue, _task(http_sink.url("/x"), schedule_time_ms=later))
    assert info.value.retryable is True
    # Another queue is not affected.
    assert bounded_queue.enqueue(fresh_queue(), _task(http_sink.url("/x"))) is EnqueueOutcome.CREATED


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "x" * 101])
def test_invalid_queue_id_is_rejected(task_queue: TaskQueue, http_sink: HttpSink, bad: str) -> None:
    with pytest.raises(InvalidId):
        task_queue.enqueue(bad, _task(http_sink.url("/x")))
