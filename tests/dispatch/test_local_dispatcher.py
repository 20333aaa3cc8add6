"""LocalDispatcher beyond the contract: stop/drain, thread hygiene, tombstone retention, attempt budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from servo.core.errors import InvalidId, InvalidInput
from servo.dispatch import (
    EnqueueOutcome,
    HttpTask,
    InboundRequest,
    InProcessTransport,
    LocalDispatcher,
    QueueUnavailable,
    RedeliveryPolicy,
    Reply,
)
from servo.dispatch._engine import Delivery

from tests.dispatch.conftest import new_task_id
from tests.support.http_sink import HttpSink


def _task(url: str, **kw: object) -> HttpTask:
    fields: dict[str, object] = {"body": b"{}", "headers": {}, **kw}
    return HttpTask(task_id=new_task_id(), url=url, **fields)  # type: ignore[arg-type]


def _dispatcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("servo-dispatch-")]


# ---------------------------------------------------------------------------------------------- stop/drain


def test_stop_drains_an_in_flight_delivery(http_sink: HttpSink) -> None:
    url = http_sink.program("/slow", default_delay_s=0.5)
    dispatcher = LocalDispatcher().start()
    dispatcher.enqueue("q", _task(url))
    assert http_sink.wait_arrived(1, "/slow", timeout=5) == 1

    started = time.monotonic()
    assert dispatcher.stop(timeout=5) is True
    assert time.monotonic() - started >= 0.3  # it waited for the answer rather than abandoning it
    assert [r.status for r in http_sink.received("/slow")] == [200]
    assert dispatcher.pending_count() == 0


def test_stop_does_not_retry_a_delivery_that_fails_while_stopping(http_sink: HttpSink) -> None:
    url = http_sink.program("/fail", default_status=500, default_delay_s=0.3)
    dispatcher = LocalDispatcher().start()
    dispatcher.enqueue("q", _task(url))
    http_sink.wait_arrived(1, "/fail")

    assert dispatcher.stop(timeout=5) is True
    time.sleep(0.3)
    assert len(http_sink.received("/fail")) == 1


def test_stop_leaves_no_threads_behind(http_sink: HttpSink) -> None:
    before = set(_dispatcher_threads())
    dispatcher = LocalDispatcher(workers_per_queue=3).start()
    for queue in ("a", "b", "c"):
        dispatcher.enqueue(queue, _task(http_sink.url("/x")))
    assert dispatcher.wait_idle(5)
    assert set(_dispatcher_threads()) - before  # over HTTP the deliveries ran on the dispatcher's threads

    assert dispatcher.stop(timeout=5) is True
    assert set(_dispatcher_threads()) - before == set()


def test_in_process_deliveries_go_straight_to_the_endpoints_threads_with_no_thread_per_delivery_slot() -> (
    None
):
    # A delivery slot was a thread waiting on the heap, which the enqueue woke and which then waited
    # for the endpoint's thread: two hand-offs a delivery, and 8 idle threads a queue. Now a due task
    # is handed to the endpoint's serving thread by whoever made it due, and settled there.
    served_on: list[str] = []

    class Probe:
        def serve(self, request: InboundRequest) -> Reply:
            served_on.append(threading.current_thread().name)
            return Reply(200)

    before = set(_dispatcher_threads())
    transport = InProcessTransport()
    transport.mount("http://127.0.0.1:9", Probe())
    with LocalDispatcher(workers_per_queue=8, transport=transport) as dispatcher:
        for queue in ("a", "b", "c"):
            for _ in range(3):
                dispatcher.enqueue(queue, _task("http://127.0.0.1:9/dispatch"))
        assert dispatcher.wait_idle(5)
        assert len(set(_dispatcher_threads()) - before) <= 1  # the timer of due times and deadlines
    assert len(served_on) == 9 and all(name == "servo-inprocess" for name in served_on)
    assert set(_dispatcher_threads()) - before == set()


def test_enqueue_after_stop_is_queue_unavailable(http_sink: HttpSink) -> None:
    dispatcher = LocalDispatcher().start()
    dispatcher.stop()
    with pytest.raises(QueueUnavailable):
        dispatcher.enqueue("q", _task(http_sink.url("/x")))


def test_tasks_wait_for_start(http_sink: HttpSink) -> None:
    dispatcher = LocalDispatcher()
    try:
        dispatcher.enqueue("q", _task(http_sink.url("/early")))
        time.sleep(0.2)
        assert http_sink.received("/early") == []
        assert dispatcher.pending_count() == 1
        dispatcher.start()
        assert dispatcher.wait_idle(5)
        assert len(http_sink.received("/early")) == 1
    finally:
        dispatcher.stop()


# ---------------------------------------------------------------------------------------------- idle/pending


def test_wait_idle_times_out_while_a_task_is_scheduled_later(http_sink: HttpSink) -> None:
    with LocalDispatcher() as dispatcher:
        dispatcher.enqueue(
            "q", _task(http_sink.url("/later"), schedule_time_ms=int(time.time() * 1000) + 300)
        )
        assert dispatcher.pending_count() == 1
        assert dispatcher.wait_idle(0.05) is False
        assert dispatcher.wait_idle(5) is True
        assert dispatcher.pending_count() == 0


def test_attempts_are_bounded_and_the_name_stays_taken(http_sink: HttpSink) -> None:
    url = http_sink.program("/always-500", default_status=500)
    policy = RedeliveryPolicy(max_attempts=3, min_backoff_s=0.01, max_backoff_s=0.05)
    with LocalDispatcher(policy=policy) as dispatcher:
        task = _task(url)
        dispatcher.enqueue("q", task)
        assert dispatcher.wait_idle(5)
        time.sleep(0.2)
        assert len(http_sink.received("/always-500")) == 3
        assert dispatcher.enqueue("q", task) is EnqueueOutcome.ALREADY_EXISTS


def test_connection_errors_are_retried(http_sink: HttpSink) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/nobody"
    policy = RedeliveryPolicy(max_attempts=2, min_backoff_s=0.01)
    with LocalDispatcher(policy=policy) as dispatcher:
        dispatcher.enqueue("q", _task(dead))
        assert dispatcher.wait_idle(5)


# ------------------------------------------------------------------------------------------- injected clock


@dataclass
class _Clock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_name_is_reusable_once_its_tombstone_expires() -> None:
    clock = _Clock()
    sent: list[str] = []

    def send(delivery: Delivery, headers: Mapping[str, str]) -> int:
        sent.append(delivery.name)
        return 204

    with LocalDispatcher(tombstone_s=3600, clock=clock, send=send) as dispatcher:
        task = _task("http://127.0.0.1:1/x")
        assert dispatcher.enqueue("q", task) is EnqueueOutcome.CREATED
        assert dispatcher.wait_idle(5)
        clock.now += 3599
        assert dispatcher.enqueue("q", task) is EnqueueOutcome.ALREADY_EXISTS
        clock.now += 2
        assert dispatcher.enqueue("q", task) is EnqueueOutcome.CREATED
        assert dispatcher.wait_idle(5)
    assert sent == [task.task_id, task.task_id]


def test_retries_are_due_after_the_backoff_on_the_injected_clock() -> None:
    clock = _Clock()
    attempts: list[float] = []
    policy = RedeliveryPolicy(max_attempts=3, min_backoff_s=30, max_backoff_s=300)

    def send(delivery: Delivery, headers: Mapping[str, str]) -> int:
        attempts.append(clock.now)
        return 503

    with LocalDispatcher(policy=policy, clock=clock, send=send) as dispatcher:
        dispatcher.enqueue("q", _task("http://127.0.0.1:1/x"))
        for step in (29.0, 1.0, 59.0, 1.0):
            time.sleep(0.15)
            clock.now += step
        assert dispatcher.wait_idle(5)
    assert attempts == [1_000.0, 1_030.0, 1_090.0]


# ---------------------------------------------------------------------------------------------- values


def test_redelivery_backoff_doubles_then_grows_linearly_and_is_capped() -> None:
    policy = RedeliveryPolicy(min_backoff_s=0.1, max_backoff_s=10.0)
    assert [policy.delay_s(n) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert policy.delay_s(10) == 10.0
    linear = RedeliveryPolicy(min_backoff_s=1.0, max_backoff_s=100.0, max_doublings=2)
    assert [linear.delay_s(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 12.0]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"min_backoff_s": 2.0, "max_backoff_s": 1.0}, {"max_doublings": -1}],
)
def test_bad_policies_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        RedeliveryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"task_id": "d_short"},
        {"task_id": "x_" + "a" * 26},
        {"url": "ftp://host/x"},
        {"body": "not bytes"},
        {"schedule_time_ms": -1},
        {"dispatch_deadline_s": 0},
        {"oidc_audience": "https://aud"},
    ],
)
def test_bad_tasks_are_rejected(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"task_id": new_task_id(), "url": "http://h/x", "body": b"", "headers": {}}
    fields.update(kwargs)
    with pytest.raises((InvalidInput, InvalidId)):
        HttpTask(**fields)  # type: ignore[arg-type]


def test_task_headers_are_a_frozen_copy() -> None:
    headers = {"A": "1"}
    task = HttpTask(task_id=new_task_id("timer"), url="http://h/x", body=b"", headers=headers)
    headers["A"] = "2"
    assert task.headers == {"A": "1"}
    with pytest.raises(TypeError):
        task.headers["B"] = "3"  # type: ignore[index]


# ---------------------------------------------------------------------------------------------- transports


class _Programmed:
    """An in-process endpoint answering a programmed sequence of statuses, recording each request."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.seen: list[tuple[int, dict[str, str], bytes]] = []

    def serve(self, request: InboundRequest) -> Reply:
        status = self.statuses.pop(0) if self.statuses else 200
        self.seen.append((status, dict(request.headers), request.body))
        return Reply(status)


def test_an_in_process_endpoint_is_redelivered_exactly_as_an_http_one(http_sink: HttpSink) -> None:
    """5xx and 429 are retried with backoff until a 2xx; the Cloud Tasks headers count the retries."""
    statuses = [503, 429, 500, 200]
    policy = RedeliveryPolicy(max_attempts=10, min_backoff_s=0.01, max_backoff_s=0.05)
    body = b'{"runId":"r1"}'
    headers = {"Content-Type": "application/json", "X-Servo-Dispatch-Secret": "s3cret"}

    url = http_sink.program("/dispatch", statuses)
    with LocalDispatcher(policy=policy) as over_http:
        over_http.enqueue("q", _task(url, body=body, headers=headers))
        assert over_http.wait_idle(10)
    http_seen = [(r.status, r.headers, r.body) for r in http_sink.received("/dispatch")]

    endpoint = _Programmed(list(statuses))
    transport = InProcessTransport()
    transport.mount("http://127.0.0.1:9", endpoint)
    with LocalDispatcher(policy=policy, transport=transport) as in_process:
        in_process.enqueue("q", _task("http://127.0.0.1:9/dispatch", body=body, headers=headers))
        assert in_process.wait_idle(10)

    def essentials(seen: list[tuple[int, Mapping[str, str], bytes]]) -> list[tuple[int, str, str, bytes]]:
        return [
            (status, h["x-cloudtasks-taskretrycount"], h["x-servo-dispatch-secret"], got)
            for status, h, got in seen
        ]

    assert essentials(endpoint.seen) == essentials(http_seen)
    assert [status for status, *_ in essentials(endpoint.seen)] == statuses


def test_a_delivery_past_its_deadline_in_process_is_a_failed_attempt_and_is_redelivered() -> None:
    release = threading.Event()
    arrivals: list[str] = []

    class Slow:
        def serve(self, request: InboundRequest) -> Reply:
            arrivals.append(request.headers["x-cloudtasks-taskretrycount"])
            if len(arrivals) == 1:
                release.wait(5)  # the first delivery outlives its deadline, as a long attempt does
            return Reply(200)

    transport = InProcessTransport()
    transport.mount("http://127.0.0.1:9", Slow())
    policy = RedeliveryPolicy(max_attempts=3, min_backoff_s=0.01, max_backoff_s=0.05)
    with LocalDispatcher(policy=policy, transport=transport) as dispatcher:
        dispatcher.enqueue("q", _task("http://127.0.0.1:9/dispatch", dispatch_deadline_s=1))
        assert dispatcher.wait_idle(10)
        release.set()
    assert arrivals == ["0", "1"]


def _voluntary_switches(thread: threading.Thread) -> int:
    with open(f"/proc/self/task/{thread.native_id}/status") as status:
        return int(next(x for x in status if x.startswith("voluntary_ctxt_switches:")).split()[1])


def test_deliveries_answered_before_their_deadline_do_not_wake_the_timer() -> None:
    # Each delivery's deadline is kept by the timer; one answered long before it (all of them, as a
    # rule) must not cost the timer a wake-up, or a thread switch a task comes back.
    transport = InProcessTransport()
    transport.mount("http://127.0.0.1:9", _Programmed([]))
    with LocalDispatcher(transport=transport) as dispatcher:
        dispatcher.enqueue("q", _task("http://127.0.0.1:9/dispatch"))
        assert dispatcher.wait_idle(5)
        (timer,) = [t for t in threading.enumerate() if t.name == "servo-dispatch-timer"]
        time.sleep(0.01)  # room for the timer to go back to sleep
        before = _voluntary_switches(timer)
        for _ in range(50):
            dispatcher.enqueue("q", _task("http://127.0.0.1:9/dispatch"))
            assert dispatcher.wait_idle(5)
            time.sleep(0.001)  # room for a woken timer to run (the correct one is never woken)
        assert _voluntary_switches(timer) - before < 10
