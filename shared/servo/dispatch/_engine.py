"""A named-task delivery engine with Cloud Tasks semantics, shared by the local dispatcher and the emulator.

Per queue: a heap of tasks ordered by due time and a pool of worker threads that POST them. A task name is
unique per queue while the task lives and for a retention period after it was delivered, given up or
deleted (a *tombstone*), exactly as Cloud Tasks refuses a recently used name. Failed deliveries (non-2xx,
connection error, timeout) are retried with the queue's exponential backoff until its attempt budget runs out.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from servo.core.errors import InvalidInput
from servo.dispatch._transport import HttpTransport, Transport

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
class _Queue:
    cond: threading.Condition
    policy: RedeliveryPolicy
    workers: int
    heap: list[tuple[float, int, _Entry]] = field(default_factory=list)
    live: dict[str, _Entry] = field(default_factory=dict)
    tombstones: dict[str, float] = field(default_factory=dict)  # name -> expiry
    threads: list[threading.Thread] = field(default_factory=list)
    paused: bool = False
    dropped: bool = False


Send = Callable[[Delivery, Mapping[str, str]], int]


class DeliveryEngine:
    """Per-queue worker pools delivering named tasks over HTTP.

    Args:
        workers_per_queue: worker threads per queue unless ``configure_queue`` says otherwise.
        policy: redelivery policy of queues not configured otherwise.
        tombstone_s: how long a finished name stays reserved.
        max_live_per_queue: live tasks a queue holds before ``submit`` raises ``Full``; None = unbounded.
        clock: epoch seconds; injectable for tests. An injected clock is polled every 20 ms, so a fake
            that jumps forward releases due tasks without waiting out the real delay.
        send: performs one delivery and returns its HTTP status; defaults to a POST over HTTP.
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
    ) -> None:
        if workers_per_queue < 1:
            raise InvalidInput(f"workers_per_queue must be >= 1, got {workers_per_queue}")
        self._workers = workers_per_queue
        self._policy = policy or RedeliveryPolicy()
        self._tombstone_s = tombstone_s
        self._max_live = max_live_per_queue
        self._clock = clock
        self._max_wait: float | None = None if clock is time.time else _FAKE_CLOCK_POLL_S
        self._send = send or transport_send(HttpTransport())
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # any task finished; wakes wait_idle
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
            for name, q in self._queues.items():
                self._spawn(name, q)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop taking tasks, let in-flight deliveries finish, join the workers; True if all exited."""
        with self._lock:
            self._stopping = True
            threads = [t for q in self._queues.values() for t in q.threads]
            for q in self._queues.values():
                q.cond.notify_all()
            self._changed.notify_all()
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

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
            q.cond.notify_all()

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
                q.dropped = True  # its workers exit; a queue re-created under the name gets new ones
                for entry in q.live.values():
                    entry.deleted = True
                q.live.clear()
                q.heap.clear()
                q.cond.notify_all()
                self._changed.notify_all()

    def _queue(self, queue: str, workers: int | None = None) -> _Queue:
        q = self._queues.get(queue)
        if q is None:
            count = self._workers if workers is None else workers
            if count < 1:
                raise InvalidInput(f"a queue needs at least one worker, got {count}")
            q = _Queue(cond=threading.Condition(self._lock), policy=self._policy, workers=count)
            self._queues[queue] = q
            if self._started and not self._stopping:
                self._spawn(queue, q)
        return q

    def _spawn(self, queue: str, q: _Queue) -> None:
        while len(q.threads) < q.workers:
            t = threading.Thread(
                target=self._work, args=(q,), name=f"servo-dispatch-{queue}-{len(q.threads)}", daemon=True
            )
            q.threads.append(t)
            t.start()

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
            if delivery.name in q.live or delivery.name in q.tombstones:
                return False
            if self._max_live is not None and len(q.live) >= self._max_live:
                raise Full(f"queue {delivery.queue} holds {len(q.live)} tasks")
            entry = _Entry(delivery)
            q.live[delivery.name] = entry
            heapq.heappush(q.heap, (delivery.due_s, next(self._seq), entry))
            q.cond.notify()
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
        expired = [name for name, until in q.tombstones.items() if until <= now]
        for name in expired:
            del q.tombstones[name]

    # ------------------------------------------------------------------------------------------ workers

    def _work(self, q: _Queue) -> None:
        while True:
            with self._lock:
                entry = self._take(q)
                if entry is None:
                    return
            status = self._deliver(entry)
            with self._lock:
                self._settle(q, entry, status)

    def _take(self, q: _Queue) -> _Entry | None:
        """Wait for a due task (lock held); None when the engine is stopping."""
        while not self._stopping and not q.dropped:
            if q.heap and not q.paused:
                due, _, entry = q.heap[0]
                wait = due - self._clock()
                if wait <= 0:
                    heapq.heappop(q.heap)
                    entry.in_flight = True
                    entry.attempts += 1
                    if entry.first_attempt_s is None:
                        entry.first_attempt_s = self._clock()
                    return entry
                q.cond.wait(wait if self._max_wait is None else min(wait, self._max_wait))
            else:
                q.cond.wait()
        return None

    def _deliver(self, entry: _Entry) -> int | None:
        d = entry.delivery
        headers = dict(d.headers)
        # The headers Cloud Tasks adds to every HTTP target request.
        headers["X-CloudTasks-QueueName"] = d.queue_label or d.queue
        headers["X-CloudTasks-TaskName"] = d.name
        headers["X-CloudTasks-TaskRetryCount"] = str(entry.attempts - 1)
        headers["X-CloudTasks-TaskExecutionCount"] = str(entry.attempts - 1)
        headers["X-CloudTasks-TaskETA"] = f"{d.due_s:.6f}"
        headers.setdefault("User-Agent", "Google-Cloud-Tasks")
        try:
            return self._send(d, headers)
        except Exception as exc:  # a connection error or timeout is a failed attempt, nothing more
            logger.warning("delivery of %s to %s failed: %s", d.name, d.url, exc)
            return None

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
            due = now + policy.delay_s(entry.attempts)
            heapq.heappush(q.heap, (due, next(self._seq), entry))
            q.cond.notify()
        self._changed.notify_all()


def transport_send(transport: Transport) -> Send:
    """Deliveries through ``transport``: the status answered; no answer raises (a failed attempt)."""

    def send(delivery: Delivery, headers: Mapping[str, str]) -> int:
        return transport.deliver(
            delivery.method, delivery.url, headers, delivery.body, timeout_s=delivery.timeout_s
        ).status

    return send
