"""The heartbeat thread and the cancellation signal it raises (design §6).

Heartbeat errors never fail a task: the control plane's zombie detection is the backstop. What a
heartbeat can do is *stop* a task: ``shouldCancel`` (a user cancel or a run timeout) or a 410 (the task
is already terminal) set the attempt's cancel signal, which the asset observes cooperatively.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from servo.core.protocol import HeartbeatRequest
from servo.worker._callbacks import CallbackClient, CallbackUnavailable
from servo.worker._ticker import Repeating, Ticker, shared_ticker

logger = logging.getLogger("servo.worker")

MAX_HEARTBEAT_INTERVAL_S = 30.0
DEFAULT_HEARTBEAT_TIMEOUT_S = 90


def heartbeat_interval(heartbeat_timeout_sec: int | None) -> float:
    """min(timeout / 5, 30 s): five chances to be heard before the control plane gives up."""
    timeout = heartbeat_timeout_sec or DEFAULT_HEARTBEAT_TIMEOUT_S
    return min(timeout / 5, MAX_HEARTBEAT_INTERVAL_S)


class CancelSignal:
    """Set once, by a heartbeat answer, a timeout or the server; the first reason wins."""

    __slots__ = ("_event", "_lock", "_reason", "_wakes")

    def __init__(self, wakes: threading.Event | None = None) -> None:
        """``wakes``: set too when the signal is, for a waiter that also waits for something else."""
        self._event = threading.Event()
        self._reason: str | None = None
        self._lock = threading.Lock()
        self._wakes = wakes

    def set(self, reason: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason
        self._event.set()
        if self._wakes is not None:
            self._wakes.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str | None:
        return self._reason

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)


Progress = Callable[[], tuple[str | None, int | None]]


class Heartbeater:
    """Sends ``heartbeat`` every ``interval`` seconds until stopped, timed by the process's ticker."""

    def __init__(
        self,
        client: CallbackClient,
        *,
        attempt: int,
        attempt_id: str,
        worker_id: str,
        traceparent: str | None,
        interval_s: float,
        progress: Progress,
        cancel: CancelSignal,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        ticker: Ticker | None = None,
    ) -> None:
        self._client = client
        self._attempt = attempt
        self._attempt_id = attempt_id
        self._worker_id = worker_id
        self._traceparent = traceparent
        self._interval_s = interval_s
        self._progress = progress
        self._cancel = cancel
        self._clock_ms = clock_ms
        self._ticker = ticker
        self._beats: Repeating | None = None
        self.sent = 0

    def start(self) -> None:
        self._beats = (self._ticker or shared_ticker()).every(self._interval_s, self.beat)

    def stop(self) -> None:
        """Stop and wait for an in-flight heartbeat, so none is sent after ``completed``."""
        if self._beats is not None:
            self._beats.stop()

    def beat(self) -> bool:
        """Send one heartbeat; False when heartbeating should stop (the task is gone)."""
        message, pct = self._progress()
        body = HeartbeatRequest(
            attempt=self._attempt,
            attempt_id=self._attempt_id,
            worker_id=self._worker_id,
            traceparent=self._traceparent,
            heartbeat_at_ms=self._clock_ms(),
            progress_pct=None if pct is None else max(0, min(100, pct)),
            message=message,
        ).to_json()
        try:
            reply = self._client.post("heartbeat", body, tries=2)
        except CallbackUnavailable:
            return True
        self.sent += 1
        if reply.status == 410:
            self._cancel.set(reply.error or "task_expired")
            return False
        if reply.ok and reply.body.get("shouldCancel") is True:
            reason = reply.body.get("cancelReason")
            self._cancel.set(reason if isinstance(reason, str) else "user_requested")
        elif not reply.ok:
            logger.warning("heartbeat rejected: %s %s", reply.status, dict(reply.body))
        return True
