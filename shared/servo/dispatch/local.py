"""The embedded mode's TaskQueue: an in-process dispatcher with Cloud Tasks semantics (design §9).

Names dedup (and stay reserved for a retention period after delivery), ``schedule_time`` is honoured,
deliveries are POSTs through a Transport (HTTP, or in process to an endpoint of this process: handed
straight to its serving thread), at most ``workers_per_queue`` at once, failures are retried with exponential
backoff, and each request is bounded by the task's dispatch deadline. State lives in memory only: after a
restart the timers sweep re-drives whatever was lost (design §5.6).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from servo.dispatch._engine import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOMBSTONE_S,
    DEFAULT_WORKERS,
    Delivery,
    DeliveryEngine,
    Full,
    RedeliveryPolicy,
    Send,
    Stopped,
    transport_send,
    transport_start,
)
from servo.dispatch._port import EnqueueOutcome, HttpTask, QueueFull, QueueUnavailable, validate_queue_id
from servo.dispatch._transport import Transport


class LocalDispatcher:
    """A TaskQueue delivering from this process.

    Args:
        workers_per_queue: concurrent deliveries per queue.
        policy: redelivery policy (defaults: 20 attempts, backoff 0.1 s doubling to 10 s).
        tombstone_s: how long a delivered name keeps answering ALREADY_EXISTS.
        max_pending_per_queue: live tasks per queue before ``enqueue`` raises QueueFull; None = unbounded.
        clock: epoch seconds, injectable for tests.
        transport: how deliveries reach their URL; None = HTTP.
        send: replaces the delivery altogether (tests of the engine only).
    """

    def __init__(
        self,
        *,
        workers_per_queue: int = DEFAULT_WORKERS,
        policy: RedeliveryPolicy | None = None,
        tombstone_s: float = DEFAULT_TOMBSTONE_S,
        max_pending_per_queue: int | None = None,
        clock: Callable[[], float] = time.time,
        transport: Transport | None = None,
        send: Send | None = None,
    ) -> None:
        self._clock = clock
        start = transport_start(transport) if send is None and transport is not None else None
        self._engine = DeliveryEngine(
            workers_per_queue=workers_per_queue,
            policy=policy,
            tombstone_s=tombstone_s,
            max_live_per_queue=max_pending_per_queue,
            clock=clock,
            send=send if send is not None or transport is None else transport_send(transport),
            start=start,
        )

    def start(self) -> LocalDispatcher:
        self._engine.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Refuse new tasks, finish in-flight deliveries and join every worker; True if all exited."""
        return self._engine.stop(timeout)

    def __enter__(self) -> LocalDispatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def enqueue(self, queue: str, task: HttpTask) -> EnqueueOutcome:
        validate_queue_id(queue)
        due = self._clock() if task.schedule_time_ms is None else task.schedule_time_ms / 1000.0
        delivery = Delivery(
            queue=queue,
            name=task.task_id,
            url=task.url,
            body=task.body,
            headers=task.headers,
            due_s=due,
            timeout_s=float(task.dispatch_deadline_s or DEFAULT_TIMEOUT_S),
        )
        try:
            created = self._engine.submit(delivery)
        except Full as exc:
            raise QueueFull(str(exc), details={"queue": queue, "task_id": task.task_id}) from exc
        except Stopped as exc:
            raise QueueUnavailable(str(exc), details={"queue": queue, "task_id": task.task_id}) from exc
        return EnqueueOutcome.CREATED if created else EnqueueOutcome.ALREADY_EXISTS

    def pending_count(self) -> int:
        """Tasks accepted and not finished yet (waiting, backing off or in flight)."""
        return self._engine.live_count()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every accepted task was delivered or given up; False on timeout."""
        return self._engine.wait_idle(timeout)
