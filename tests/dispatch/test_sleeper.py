"""The timer threads' sleep (servo.dispatch._sleeper): woken only for a time earlier than its own."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from servo.dispatch import Sleeper

DEADLINE_S = 5.0


class _Sleeping:
    """A thread that sleeps on ``sleeper`` till it is woken, over and over, counting its sleeps."""

    def __init__(self, until: float = math.inf) -> None:
        self.cond = threading.Condition()
        self.sleeper = Sleeper(self.cond)
        self.sleeps = 0
        self._until = until
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        with self.cond:
            while not self._stop:
                self.sleeps += 1
                self.sleeper.sleep(self._until, time.monotonic())

    def wait_for(self, predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            with self.cond:
                if predicate():
                    return
            assert time.monotonic() < deadline, "the sleeping thread never got there"
            time.sleep(0.001)

    def stop(self) -> None:
        with self.cond:
            self._stop = True
            self.sleeper.due_by(-math.inf)
        self._thread.join(DEADLINE_S)
        assert not self._thread.is_alive()


def test_an_awake_thread_is_woken_for_nothing() -> None:
    cond = threading.Condition()
    sleeper = Sleeper(cond)
    with cond:
        assert not sleeper.due_by(0.0)  # it has not slept yet: it looks before it does
        sleeper.sleep(math.inf, time.monotonic(), max_wait=0.001)
        assert sleeper.due_by(0.0)
        sleeper.awake()
        assert not sleeper.due_by(-1.0)


def test_only_a_time_before_its_own_wakes_the_thread() -> None:
    until = time.monotonic() + 3600
    sleeping = _Sleeping(until)
    sleeping.wait_for(lambda: sleeping.sleeper.wake_at == until)
    with sleeping.cond:
        assert not sleeping.sleeper.due_by(until + 1)
        assert not sleeping.sleeper.due_by(until)
        assert sleeping.sleeps == 1
        assert sleeping.sleeper.due_by(until - 1)
    sleeping.wait_for(lambda: sleeping.sleeps == 2)
    sleeping.stop()


def test_a_time_it_was_told_of_is_kept_though_nothing_is_due_then_any_more() -> None:
    # Told of a time, it sleeps till then even when what fell due then is gone: whatever falls due
    # after it joins that wake-up instead of costing one of its own.
    sleeping = _Sleeping()
    sleeping.wait_for(lambda: sleeping.sleeper.wake_at == math.inf)
    told = time.monotonic() + 3600
    with sleeping.cond:
        assert sleeping.sleeper.due_by(told)
    sleeping.wait_for(lambda: sleeping.sleeps == 2)
    with sleeping.cond:
        assert sleeping.sleeper.wake_at == told
        assert not sleeping.sleeper.due_by(told + 60)
    sleeping.stop()


def test_a_thread_that_must_poll_sleeps_at_most_its_longest_wait() -> None:
    cond = threading.Condition()
    sleeper = Sleeper(cond)
    start = time.monotonic()
    with cond:
        sleeper.sleep(math.inf, start, max_wait=0.01)  # returns without anyone waking it
        sleeper.sleep(start + 3600, time.monotonic(), max_wait=0.01)
    assert sleeper.wake_at == start + 3600
