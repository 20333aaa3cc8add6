"""A named-task delivery engine with Cloud Tasks semantics, shared by the local dispatcher and the emulator.

Per queue: a heap of tasks ordered by due time, and at most ``workers`` deliveries in flight. A task that
is due is handed to the transport by whoever made it due (its ``submit``, the end of the delivery
before it, or the one timer thread for tasks due later and for deadlines), and is settled on the thread
that answered it: an in-process delivery costs one hand-off (to the endpoint's serving thread), where a
pool thread per delivery slot, woken by the submit and waiting for the endpoint, cost three. A task name is
unique per queue while the task lives and for a retention period after it was delivered, given up or
deleted (a *tombstone*), exactly as Cloud Tasks refuses a recently used name. Failed deliveries (non-2xx,
connection error, timeout) are retried with the queue's exponential backoff until its attempt budget runs out.
"""

from __future__ import annotations

import builtins
import functools
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from servo.core.errors import InvalidInput
from servo.dispatch._reused_threads import ReusedThreads
from servo.dispatch._sleeper import Sleeper
from servo.dispatch._transport import HttpTransport, Reply, Transport, TransportError

logger = logging.getLogger(__name__)

DEFAULT_WORKERS = 8
DEFAULT_TIMEOUT_S = 600.0  # Cloud Tasks' default dispatch deadline for HTTP targets
DEFAULT_TOMBSTONE_S = 3600.0  # Cloud Tasks keeps a used name for about an hour
_FAKE_CLOCK_POLL_S = 0.02


class Full(Exception):
    """The queue holds its maximum number of live tasks."""


class Stopped(Exception):
    """The engine was stopped; it accepts nothing more."""


@dataclass(frozen=True, slots=True)
class RedeliveryPolicy:
    """Queue-level redelivery of one task (Cloud Tasks ``RetryConfig``), not the asset's retry policy.

    Attributes:
        max_attempts: deliveries before giving up, the first included (>= 1).
        min_backoff_s: delay before the first retry.
        max_backoff_s: cap on any delay.
        max_doublings: after this many doublings the delay grows linearly, as in Cloud Tasks.
        max_retry_duration_s: give up once this long has passed since the first attempt; None = no limit.
    """

    max_attempts: int = 20
    min_backoff_s: float = 0.1
    max_backoff_s: float = 10.0
    max_doublings: int = 16
    max_retry_duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidInput(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not 0 <= self.min_backoff_s <= self.max_backoff_s:
            raise InvalidInput("backoff bounds must satisfy 0 <= min_backoff_s <= max_backoff_s")
        if self.max_doublings < 0:
            raise InvalidInput(f"max_doublings must be >= 0, got {self.max_doublings}")

    def delay_s(self, failures: int) -> float:
        """Delay before the retry that follows the ``failures``-th failed attempt (1-based)."""
        n = max(failures, 1) - 1
        if n <= self.max_doublings:
            delay = self.min_backoff_s * 2.0**n
        else:
            # Cloud Tasks: past max_doublings the interval grows by a constant step of 2^max_doublings*min.
            step = self.min_backoff_s * 2.0**self.max_doublings
            delay = step * (n - self.max_doublings + 1)
        return min(delay, self.max_backoff_s)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One task as the engine sees it; ``meta`` is opaque data the owner keeps with the task."""

    queue: str
    name: str
    url: str
    body: bytes
    headers: Mapping[str, str]
    method: str = "POST"
    due_s: float = 0.0
    timeout_s: float = DEFAULT_TIMEOUT_S
    queue_label: str = ""  # the short queue id sent in X-CloudTasks-QueueName
    meta: Any = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A live task: its delivery and how many attempts were made so far."""

    delivery: Delivery
    attempts: int
    in_flight: bool


@dataclass(eq=False, slots=True)
class _Entry:
    delivery: Delivery
    attempts: int = 0
    first_attempt_s: float | None = None
    in_flight: bool = False
    deleted: bool = False


@dataclass(eq=False, slots=True)
class _Flight:
    """One delivery in flight; ``done`` once answered or past its deadline (a late answer is ignored)."""

    entry: _Entry
    deadline: float  # monotonic s
    done: bool = False


@dataclass(eq=False, slots=True)
class _Queue:
    policy: RedeliveryPolicy
    workers: int
    heap: list[tuple[float, int, _Entry]] = field(default_factory=list)
    live: dict[str, _Entry] = field(default_factory=dict)
    tombstones: dict[str, float] = field(default_factory=dict)  # name -> expiry
    flights: set[_Flight] = field(default_factory=set)
    paused: bool = False
    dropped: bool = False


# Performs one delivery and returns its HTTP status (blocking).
Send = Callable[[Delivery, Mapping[str, str]], int]
# Starts one delivery and returns; the status (None: no answer) comes later, on any thread.
Answer = Callable[[int | None], None]
Start = Callable[[Delivery, Mapping[str, str], Answer], None]


class DeliveryEngine:
    """Per-queue delivery of named tasks, over HTTP unless told otherwise.

    Args:
        workers_per_queue: deliveries in flight per queue unless ``configure_queue`` says otherwise.
        policy: redelivery policy of queues not configured otherwise.
        tombstone_s: how long a finished name stays reserved.
        max_live_per_queue: live tasks a queue holds before ``submit`` raises ``Full``; None = unbounded.
        clock: epoch seconds; injectable for tests. An injected clock is polled every 20 ms, so a fake
            that jumps forward releases due tasks without waiting out the real delay.
        send: performs one delivery and returns its HTTP status; defaults to a POST over HTTP. Runs on
            threads of the engine's own.
        start: starts one delivery without waiting (``transport_start``); replaces ``send``.
    """

    def __init__(
        self,
        *,
        workers_per_queue: int = DEFAULT_WORKERS,
        policy: RedeliveryPolicy | None = None,
        tombstone_s: float = DEFAULT_TOMBSTONE_S,
        max_live_per_queue: int | None = None,
        clock: Callable[[], float] = time.time,
        send: Send | None = None,
        start: Start | None = None,
    ) -> None:
        if workers_per_queue < 1:
            raise InvalidInput(f"workers_per_queue must be >= 1, got {workers_per_queue}")
        self._workers = workers_per_queue
        self._policy = policy or RedeliveryPolicy()
        self._tombstone_s = tombstone_s
        self._max_live = max_live_per_queue
        self._clock = clock
        self._max_wait: float | None = None if clock is time.time else _FAKE_CLOCK_POLL_S
        self._threads = ReusedThreads("servo-dispatch")
        self._start = start or self._on_threads(send or transport_send(HttpTransport()))
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # any task finished; wakes wait_idle
        self._tick = threading.Condition(self._lock)  # wakes the timer
        self._sleeper = Sleeper(self._tick)  # only something due before the timer's time wakes it
        self._timer: threading.Thread | None = None
        self._queues: dict[str, _Queue] = {}
        self._seq = itertools.count()
        self._started = False
        self._stopping = False

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        with self._lock:
            if self._stopping:
                raise Stopped("a stopped engine cannot be restarted")
            self._started = True
            self._timer = threading.Thread(target=self._time, name="servo-dispatch-timer", daemon=True)
            self._timer.start()
            flights = [f for q in self._queues.values() for f in self._due(q)]
        self._begin(flights)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop taking tasks, let in-flight deliveries finish; True if all did and every thread exited."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopping = True
            self._tick.notify_all()
            self._changed.notify_all()
            while any(q.flights for q in self._queues.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            drained = not any(q.flights for q in self._queues.values())
            timer = self._timer
        if timer is not None:
            timer.join(max(0.0, deadline - time.monotonic()))
        closed = self._threads.close(max(0.0, deadline - time.monotonic()))
        return drained and closed and not (timer is not None and timer.is_alive())

    # ------------------------------------------------------------------------------------------ queues

    def configure_queue(
        self, queue: str, *, policy: RedeliveryPolicy | None = None, workers: int | None = None
    ) -> None:
        """Create ``queue`` (or change its policy); worker count applies only when it is created."""
        with self._lock:
            q = self._queue(queue, workers)
            if policy is not None:
                q.policy = policy

    def set_paused(self, queue: str, paused: bool) -> None:
        with self._lock:
            q = self._queue(queue)
            q.paused = paused
            flights = self._due(q)
        self._begin(flights)

    def purge(self, queue: str) -> None:
        """Drop every waiting task of ``queue``; their names stay reserved, as after a delete."""
        with self._lock:
            q = self._queues.get(queue)
            if q is None:
                return
            for name in list(q.live):
                self._delete(q, name)
            self._changed.notify_all()

    def drop_queue(self, queue: str) -> None:
        with self._lock:
            q = self._queues.pop(queue, None)
            if q is not None:
                q.dropped = True  # nothing more starts from it; a queue re-created under the name is new
                for entry in q.live.values():
                    entry.deleted = True
                q.live.clear()
                q.heap.clear()
                self._changed.notify_all()

    def _queue(self, queue: str, workers: int | None = None) -> _Queue:
        q = self._queues.get(queue)
        if q is None:
            count = self._workers if workers is None else workers
            if count < 1:
                raise InvalidInput(f"a queue needs at least one worker, got {count}")
            q = _Queue(policy=self._policy, workers=count)
            self._queues[queue] = q
        return q

    # ------------------------------------------------------------------------------------------ tasks

    def submit(self, delivery: Delivery) -> bool:
        """Add a task; False when its name is live or tombstoned in its queue.

        Raises:
            Full: the queue is at ``max_live_per_queue``.
            Stopped: the engine was stopped.
        """
        with self._lock:
            if self._stopping:
                raise Stopped("the dispatcher is stopped")
            q = self._queue(delivery.queue)
            now = self._clock()
            self._prune(q, now)
            reserved = q.tombstones.get(delivery.name)
            if reserved is not None and reserved <= now:  # expired, behind one that is not (clock set back)
                del q.tombstones[delivery.name]
                reserved = None
            if delivery.name in q.live or reserved is not None:
                return False
            if self._max_live is not None and len(q.live) >= self._max_live:
                raise Full(f"queue {delivery.queue} holds {len(q.live)} tasks")
            entry = _Entry(delivery)
            q.live[delivery.name] = entry
            self._push(q, delivery.due_s, entry, now)
            flights = self._due(q)
        self._begin(flights)
        return True

    def get(self, queue: str, name: str) -> Snapshot | None:
        with self._lock:
            q = self._queues.get(queue)
            entry = q.live.get(name) if q else None
            return None if entry is None else Snapshot(entry.delivery, entry.attempts, entry.in_flight)

    def list(self, queue: str) -> list[Snapshot]:
        with self._lock:
            q = self._queues.get(queue)
            entries = list(q.live.values()) if q else []
            return [Snapshot(e.delivery, e.attempts, e.in_flight) for e in entries]

    def delete(self, queue: str, name: str) -> bool:
        """Remove a live task (an in-flight one finishes but is not retried); False if there is none."""
        with self._lock:
            q = self._queues.get(queue)
            if q is None or name not in q.live:
                return False
            self._delete(q, name)
            self._changed.notify_all()
            return True

    def _delete(self, q: _Queue, name: str) -> None:
        entry = q.live.pop(name)
        entry.deleted = True
        q.tombstones[name] = self._clock() + self._tombstone_s
        if not entry.in_flight:
            q.heap = [item for item in q.heap if item[2] is not entry]
            heapq.heapify(q.heap)

    def live_count(self) -> int:
        """Tasks accepted and not yet finished: waiting, backing off or in flight."""
        with self._lock:
            return sum(len(q.live) for q in self._queues.values())

    def wait_idle(self, timeout: float) -> bool:
        """Block until no task is live (or the engine stops); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while any(q.live for q in self._queues.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping:
                    return False
                self._changed.wait(remaining)
            return True

    def _prune(self, q: _Queue, now: float) -> None:
        # Names are tombstoned in the order they expire (one retention period after ``now``), so the
        # expired ones are the oldest: a look at each submit stops at the first one still reserved,
        # where a scan of every tombstone cost a fan-out's submits O(n) each.
        expired = []
        for name, until in q.tombstones.items():
            if until > now:
                break
            expired.append(name)
        for name in expired:
            del q.tombstones[name]

    # ------------------------------------------------------------------------------------------ delivery

    def _push(self, q: _Queue, due: float, entry: _Entry, now: float) -> None:
        """Queue ``entry`` for ``due`` (lock held); the timer is woken only if it would sleep past it."""
        heapq.heappush(q.heap, (due, next(self._seq), entry))
        if due > now:
            self._wake_by(time.monotonic() + (due - now))

    def _wake_by(self, when: float) -> None:
        if self._timer is not None:
            self._sleeper.due_by(when)

    def _due(self, q: _Queue) -> builtins.list[_Flight]:
        """Take the due tasks ``q`` has room for (lock held); the caller begins them, lock released."""
        flights: builtins.list[_Flight] = []
        if not self._started or self._stopping or q.dropped or q.paused:
            return flights
        now = None
        while q.heap and len(q.flights) < q.workers:
            now = self._clock() if now is None else now
            due, _, entry = q.heap[0]
            if due > now:
                break
            heapq.heappop(q.heap)
            entry.in_flight = True
            entry.attempts += 1
            if entry.first_attempt_s is None:
                entry.first_attempt_s = now
            flight = _Flight(entry, time.monotonic() + entry.delivery.timeout_s)
            q.flights.add(flight)
            self._wake_by(flight.deadline)
            flights.append(flight)
        return flights

    def _begin(self, flights: Iterable[_Flight]) -> None:
        for flight in flights:
            d = flight.entry.delivery
            attempts = flight.entry.attempts
            headers = dict(d.headers)
            # The headers Cloud Tasks adds to every HTTP target request.
            headers["X-CloudTasks-QueueName"] = d.queue_label or d.queue
            headers["X-CloudTasks-TaskName"] = d.name
            headers["X-CloudTasks-TaskRetryCount"] = str(attempts - 1)
            headers["X-CloudTasks-TaskExecutionCount"] = str(attempts - 1)
            headers["X-CloudTasks-TaskETA"] = f"{d.due_s:.6f}"
            headers.setdefault("User-Agent", "Google-Cloud-Tasks")
            try:
                self._start(d, headers, functools.partial(self._answered, flight))
            except Exception as exc:  # nothing could carry it (shutting down): a failed attempt
                logger.warning("delivery of %s to %s failed: %s", d.name, d.url, exc)
                self._answered(flight, None)

    def _answered(self, flight: _Flight, status: int | None) -> None:
        """The delivery's answer (None: none came); settled here, and what that makes due begun."""
        with self._lock:
            if flight.done:
                return  # past its deadline: settled already
            flight.done = True
            q = self._queues.get(flight.entry.delivery.queue)
            if q is None or flight not in q.flights:
                q = next((x for x in self._queues.values() if flight in x.flights), None)
            if q is not None:
                q.flights.discard(flight)
                self._settle(q, flight.entry, status)
                flights = self._due(q)
            else:  # its queue was dropped meanwhile
                flight.entry.in_flight = False
                flights = []
                self._changed.notify_all()
        self._begin(flights)

    def _time(self) -> None:
        """The timer: begins tasks as they fall due, and fails deliveries past their deadline."""
        with self._lock:
            while not self._stopping:
                now, mono = self._clock(), time.monotonic()
                flights = [f for q in self._queues.values() for f in self._due(q)]
                late = [f for q in self._queues.values() for f in q.flights if f.deadline <= mono]
                if flights or late:
                    self._sleeper.awake()
                    self._lock.release()
                    try:
                        self._begin(flights)
                        for flight in late:
                            d = flight.entry.delivery
                            logger.warning(
                                "delivery of %s to %s failed: no answer within %gs",
                                d.name,
                                d.url,
                                d.timeout_s,
                            )
                            self._answered(flight, None)
                    finally:
                        self._lock.acquire()
                    continue
                wake = math.inf
                for q in self._queues.values():
                    if q.heap and not q.paused and len(q.flights) < q.workers:
                        wake = min(wake, mono + (q.heap[0][0] - now))
                    for flight in q.flights:
                        wake = min(wake, flight.deadline)
                # Till a time it was told of and that has not come yet, too (its task may be gone).
                self._sleeper.sleep(wake, mono, max_wait=self._max_wait)

    def _on_threads(self, send: Send) -> Start:
        """A blocking ``send`` run on the engine's own threads."""

        def start(delivery: Delivery, headers: Mapping[str, str], answer: Answer) -> None:
            def deliver() -> int | None:
                try:
                    return send(delivery, headers)
                except Exception as exc:  # a connection error or timeout is a failed attempt
                    logger.warning("delivery of %s to %s failed: %s", delivery.name, delivery.url, exc)
                    return None

            self._threads.run(deliver, answer)  # type: ignore[arg-type]

        return start

    def _settle(self, q: _Queue, entry: _Entry, status: int | None) -> None:
        entry.in_flight = False
        name = entry.delivery.name
        ok = status is not None and 200 <= status < 300
        now = self._clock()
        policy = q.policy
        first = entry.first_attempt_s if entry.first_attempt_s is not None else now
        out_of_time = policy.max_retry_duration_s is not None and now - first >= policy.max_retry_duration_s
        if entry.deleted:
            pass
        elif ok or self._stopping or entry.attempts >= policy.max_attempts or out_of_time:
            if not ok:
                logger.error(
                    "giving up on task %s after %d attempts (last status %s)", name, entry.attempts, status
                )
            q.live.pop(name, None)
            q.tombstones[name] = now + self._tombstone_s
        else:
            self._push(q, now + policy.delay_s(entry.attempts), entry, now)
        self._changed.notify_all()


def transport_send(transport: Transport) -> Send:
    """Deliveries through ``transport``: the status answered; no answer raises (a failed attempt)."""

    def send(delivery: Delivery, headers: Mapping[str, str]) -> int:
        return transport.deliver(
            delivery.method, delivery.url, headers, delivery.body, timeout_s=delivery.timeout_s
        ).status

    return send


def transport_start(transport: Transport) -> Start | None:
    """Deliveries begun through ``transport`` without waiting, when it can (``InProcessTransport.begin``);
    the engine keeps the deadline."""
    begin = getattr(transport, "begin", None)
    if begin is None:
        return None

    def start(delivery: Delivery, headers: Mapping[str, str], answer: Answer) -> None:
        def answered(reply: Reply | TransportError) -> None:
            if isinstance(reply, TransportError):
                logger.warning("delivery of %s to %s failed: %s", delivery.name, delivery.url, reply)
                answer(None)
            else:
                answer(reply.status)

        begin(delivery.method, delivery.url, headers, delivery.body, answered, timeout_s=delivery.timeout_s)

    return start
