"""One ticker thread per worker process runs every attempt's heartbeats, log flushes and timeouts.

An attempt used to start a heartbeat thread, a log-upload thread and a timer thread of its own (and
its asset's thread), about 0.1 ms of CPU to start and join each. The ticker hands each due job to a
kept thread, so a job that blocks (a heartbeat waiting on a slow control plane) holds back no other.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from servo.dispatch import ReusedThreads
from servo.worker._ticker import Ticker

from tests.worker.conftest import Serve, dispatch, envelope
from tests.worker.fake_control_plane import FakeControlPlane

DEADLINE_S = 10.0


def _counter(ticker: Ticker, interval_s: float) -> tuple[Any, threading.Semaphore]:
    ran = threading.Semaphore(0)

    def job() -> bool:
        ran.release()
        return True

    return ticker.every(interval_s, job), ran


def test_a_repeating_job_runs_again_until_stopped_and_never_after() -> None:
    ticker = Ticker(ReusedThreads("test-tick"))
    ran: list[int] = []
    third = threading.Event()

    def job() -> bool:
        ran.append(1)
        if len(ran) >= 3:
            third.set()
        return True

    handle = ticker.every(0.001, job)
    assert third.wait(DEADLINE_S)
    handle.stop()
    after_stop = len(ran)
    # A later job of the same ticker runs, so the ticker has passed the stopped job's time by then.
    other, other_ran = _counter(ticker, 0.01)
    assert other_ran.acquire(timeout=DEADLINE_S) and other_ran.acquire(timeout=DEADLINE_S)
    other.stop()
    assert len(ran) == after_stop


def test_a_job_that_returns_false_is_not_run_again() -> None:
    ticker = Ticker(ReusedThreads("test-tick"))
    ran: list[int] = []
    ticker.every(0.001, lambda: bool(ran.append(1)))
    other, other_ran = _counter(ticker, 0.005)
    for _ in range(3):
        assert other_ran.acquire(timeout=DEADLINE_S)
    other.stop()
    assert ran == [1]


def test_a_blocked_job_holds_back_no_other_job() -> None:
    ticker = Ticker(ReusedThreads("test-tick"))
    release = threading.Event()
    blocked = threading.Event()

    def stuck() -> bool:
        blocked.set()
        release.wait(DEADLINE_S)
        return True

    slow = ticker.every(0.001, stuck)
    assert blocked.wait(DEADLINE_S)
    fast, fast_ran = _counter(ticker, 0.001)
    for _ in range(5):
        assert fast_ran.acquire(timeout=DEADLINE_S)
    fast.stop()
    release.set()
    slow.stop()


def test_stop_waits_for_a_run_in_flight() -> None:
    """So no heartbeat is sent after ``completed`` and no log chunk races the final upload."""
    ticker = Ticker(ReusedThreads("test-tick"))
    inside, release, stopped = threading.Event(), threading.Event(), threading.Event()
    runs: list[int] = []

    def job() -> bool:
        runs.append(1)
        inside.set()
        release.wait(DEADLINE_S)
        return True

    handle = ticker.every(0.001, job)
    assert inside.wait(DEADLINE_S)
    stopper = threading.Thread(target=lambda: (handle.stop(), stopped.set()))
    stopper.start()
    assert not stopped.wait(0.05)
    release.set()
    assert stopped.wait(DEADLINE_S)
    stopper.join()
    assert runs == [1]


def test_a_stopped_job_stops_even_from_inside_its_own_run() -> None:
    ticker = Ticker(ReusedThreads("test-tick"))
    runs: list[int] = []
    handle: list[Any] = []
    done = threading.Event()

    def job() -> bool:
        runs.append(1)
        handle[0].stop()
        done.set()
        return True

    handle.append(ticker.every(0.001, job))
    assert done.wait(DEADLINE_S)
    other, other_ran = _counter(ticker, 0.005)
    assert other_ran.acquire(timeout=DEADLINE_S) and other_ran.acquire(timeout=DEADLINE_S)
    other.stop()
    assert runs == [1]


def test_attempts_run_on_kept_threads_not_threads_of_their_own(serve: Serve, plane: FakeControlPlane) -> None:
    seen: list[threading.Thread] = []
    from servo.sdk import asset

    @asset(namespace="demo")
    def where(ctx: Any) -> None:
        seen.append(threading.current_thread())

    worker = serve({"demo.where": where})
    for i in range(5):
        answer = dispatch(
            worker, envelope(plane, "demo.where", dispatch_id=f"dis-where-{i}", attempt=i + 1)
        ).json()
        assert answer["status"] == "completed"
    assert len(seen) == 5
    # One after another, the attempts' assets ran on one kept thread, not on a thread each.
    assert all(t is seen[0] for t in seen)
    assert not [t for t in threading.enumerate() if t.name.startswith(("servo-heartbeat-", "servo-logs-"))]


def _voluntary_switches(thread: threading.Thread) -> int:
    with open(f"/proc/self/task/{thread.native_id}/status") as status:
        line = next(x for x in status if x.startswith("voluntary_ctxt_switches:"))
    return int(line.split()[1])


def test_jobs_that_come_and_go_before_they_are_due_do_not_wake_the_ticker() -> None:
    # An attempt registers its heartbeats, log flushes and timeout, and most attempts end long before
    # any of them is due: the ticker thread sleeps until the earliest due time it knows and is woken
    # only for a job due before that, not for every job registered or stopped.
    ticker = Ticker(ReusedThreads("test-tick"))
    first, first_ran = _counter(ticker, 0.001)
    assert first_ran.acquire(timeout=DEADLINE_S)
    first.stop()
    ticker.every(3600, lambda: True).stop()  # the ticker now sleeps till this one's time, gone or not
    assert ticker._thread is not None
    before = _voluntary_switches(ticker._thread)
    for _ in range(100):
        ticker.every(7200, lambda: True).stop()
        time.sleep(0.001)  # room for a woken ticker to run (the correct one is never woken)
    assert _voluntary_switches(ticker._thread) - before < 20


def test_a_hurried_job_runs_now_and_then_keeps_its_interval() -> None:
    ticker = Ticker(ReusedThreads("test-tick"))
    handle, ran = _counter(ticker, 3600)
    handle.hurry()
    assert ran.acquire(timeout=DEADLINE_S)
    handle.hurry()
    assert ran.acquire(timeout=DEADLINE_S)
    handle.stop()
    handle.hurry()  # a stopped job stays stopped
    assert not ran.acquire(timeout=0.05)
