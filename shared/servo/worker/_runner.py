"""One task attempt, end to end: started → heartbeats and streamed logs → the asset → completed.

The asset runs on a kept thread of its own (``ReusedThreads``), in a copy of the request's context (so
the per-task capture follows it), while the request thread waits. That keeps the HTTP request
synchronous (Cloud Run style) but lets the worker answer when an asset ignores a cancel or a timeout:
after the grace period the attempt is reported and the thread is abandoned (it is a daemon and can
only write to its own buffers).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from servo.core.canonical_json import canonical_dumps
from servo.core.errors import InvalidMessage, ServoError
from servo.core.ids import ulid_text
from servo.core.protocol import CompletedRequest, DispatchEnvelope, StartedRequest, TaskError, TaskOutput
from servo.dispatch import ReusedThreads, Transport
from servo.errors import classify_exception
from servo.sdk import AssetContext
from servo.worker._callbacks import ABORT_ON_STARTED, CallbackClient
from servo.worker._capture import capture_output
from servo.worker._heartbeat import CancelSignal, Heartbeater, heartbeat_interval
from servo.worker._invoke import USER_LOGGERS, AssetFunction, Reporter, build_context, call_asset, timeout_of
from servo.worker._logstream import DEFAULT_FLUSH_INTERVAL_S, LogUploader
from servo.worker._ticker import shared_ticker
from servo.worker._tracebacks import user_traceback

logger = logging.getLogger("servo.worker")

TIMEOUT_REASON = "timeout"
# The threads assets run on, kept from one attempt to the next (a thread start and join per attempt
# was most of a short task's worker CPU); an abandoned asset keeps its thread, as before.
_ASSET_THREADS = ReusedThreads("servo-asset")


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """Knobs of the attempt runner; the defaults are production values, tests shrink the times."""

    worker_id: str
    heartbeat_interval_s: float | None = None  # None = min(heartbeatTimeoutSec / 5, 30 s)
    cancel_grace_s: float = 30.0
    callback_tries: int = 4
    callback_backoff_s: float = 0.25
    log_flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S  # how often a running attempt's output is sent


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How the attempt ended: ``status`` is ``completed`` or ``skipped`` (the server said do not run)."""

    status: str
    outcome: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Finished:
    value: Any = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # Set by the asset's end or by a cancel: what the request thread sleeps on (it polled before).
    wake: threading.Event = field(default_factory=threading.Event)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _new_ulid() -> str:
    return ulid_text(time.time_ns() // 1_000_000, int.from_bytes(os.urandom(10), "big"))


def run_attempt(
    envelope: DispatchEnvelope,
    fn: AssetFunction | None,
    transport: Transport,
    config: RunnerConfig,
    *,
    refusal: str | None = None,
) -> AttemptResult:
    """Run one dispatched attempt and report it.

    ``fn`` None: the attempt is reported FAILED (CONFIGURATION) without running anything, with
    ``refusal`` as the reason (default: the asset is not in this worker's project).

    Raises:
        CallbackUnavailable: ``started`` or ``completed`` could not reach the control plane; the caller
            answers 500 so the queue redelivers.
    """
    client = CallbackClient(
        transport,
        envelope.callback_base_url,
        envelope.task_id,
        envelope.task_token,
        tries=config.callback_tries,
        backoff_s=config.callback_backoff_s,
    )
    started = StartedRequest(
        attempt=envelope.attempt,
        attempt_id=envelope.attempt_id,
        worker_id=config.worker_id,
        traceparent=envelope.traceparent,
        started_at_ms=_now_ms(),
        # One per delivery: a redelivery of an attempt that is running elsewhere is refused by it.
        execution_id=_new_ulid(),
    )
    reply = client.post("started", started.to_json())
    if not reply.ok:
        # 409 (terminal / stale attempt / cancelling) and 410 mean "never run"; any other refusal is
        # permanent too (a redelivery would get the same answer), so the dispatch is acknowledged.
        if reply.status not in (409, 410) or (reply.status == 409 and reply.error not in ABORT_ON_STARTED):
            logger.warning("started refused: %s %s", reply.status, dict(reply.body))
        return AttemptResult("skipped", detail={"status": reply.status, **reply.body})

    reporter = Reporter()
    finished = _Finished()
    cancel = CancelSignal(wakes=finished.wake)
    if fn is None:
        missing = TaskError(
            category="CONFIGURATION",
            message=refusal or f"asset {envelope.task_key!r} is not defined in this worker's project",
            retryable=False,
        )
        return _complete(client, envelope, config, "FAILED", None, missing, None)

    try:
        context = build_context(fn, envelope, reporter, cancel)
    except ServoError as exc:
        bad = TaskError(category="CONFIGURATION", message=exc.message, retryable=False)
        return _complete(client, envelope, config, "FAILED", None, bad, None)

    beats = Heartbeater(
        client,
        attempt=envelope.attempt,
        attempt_id=envelope.attempt_id,
        worker_id=config.worker_id,
        traceparent=envelope.traceparent,
        interval_s=config.heartbeat_interval_s or heartbeat_interval(envelope.heartbeat_timeout_sec),
        progress=reporter.snapshot,
        cancel=cancel,
    )
    timeout_s = timeout_of(envelope, fn)
    with capture_output(USER_LOGGERS) as captured:
        uploader = LogUploader(
            client, envelope.attempt, captured.stream, interval_s=config.log_flush_interval_s
        )
        uploader.start()
        beats.start()
        timer = shared_ticker().every(timeout_s, lambda: _time_out(cancel)) if timeout_s else None
        _ASSET_THREADS.run(functools.partial(contextvars.copy_context().run, _call, finished, fn, context))
        _wait(finished, cancel, config.cancel_grace_s)
        beats.stop()
        if timer is not None:
            timer.stop()
    outcome, output, error = _outcome(finished, cancel, reporter, timeout_s)
    if error is not None and error.stack_trace:
        # The log is where a failure is read: the traceback goes there, after what the asset printed.
        captured.write_stderr(error.stack_trace)
    # Before ``completed``: a reader that sees the task finished also sees all of its output.
    uploader.close()
    return _complete(client, envelope, config, outcome, output, error, cancel.reason)


def _time_out(cancel: CancelSignal) -> bool:
    cancel.set(TIMEOUT_REASON)
    return False  # once


def _call(finished: _Finished, fn: AssetFunction, context: AssetContext) -> None:
    try:
        finished.value = call_asset(fn, context)
    except BaseException as exc:
        finished.error = exc
    finally:
        finished.done.set()
        finished.wake.set()


def _wait(finished: _Finished, cancel: CancelSignal, grace_s: float) -> None:
    """Wait for the asset; once cancelled (or timed out), give it ``grace_s`` more to stop."""
    finished.wake.wait()
    if not finished.done.is_set() and not finished.done.wait(grace_s):
        logger.warning("asset did not stop within %.1fs of %s; abandoning it", grace_s, cancel.reason)


def _outcome(
    finished: _Finished, cancel: CancelSignal, reporter: Reporter, timeout_s: float | None
) -> tuple[str, dict[str, Any] | None, TaskError | None]:
    if cancel.reason == TIMEOUT_REASON:
        return "FAILED", None, TaskError("TIMEOUT", f"attempt exceeded its timeout of {timeout_s:g}s", True)
    if cancel.is_set():
        # Whatever the asset did after the cancel, a cancelled attempt is never a success.
        return "CANCELLED", None, TaskError("CANCELLED", f"cancelled: {cancel.reason}", False)
    if finished.error is not None:
        return "FAILED", None, _error_of(finished.error)
    try:
        output = _output_of(finished.value, reporter)
    except ServoError as exc:
        return "FAILED", None, TaskError("USER_CODE", exc.message, False)
    return "SUCCEEDED", output, None


def _error_of(exc: BaseException) -> TaskError:
    category, retryable, message = classify_exception(exc)
    wire = {
        "category": category,
        "message": message,
        "retryable": retryable,
        "stackTrace": user_traceback(exc),
    }
    try:
        # Parsing checks the category against the contract's enum (a user subclass may invent one).
        return TaskError.from_json(wire)
    except InvalidMessage:
        return TaskError.from_json({**wire, "category": "USER_CODE"})


def _output_of(value: Any, reporter: Reporter) -> dict[str, Any]:
    metadata = reporter.collected()
    if isinstance(value, Mapping):
        metadata.update(value)
    row_count = metadata.get("row_count", metadata.get("rowCount"))
    if not (isinstance(row_count, int) and not isinstance(row_count, bool) and row_count >= 0):
        row_count = None
    try:
        # The control plane stores outputs as canonical JSON (no floats): refuse here, with a clear
        # message, rather than have the completion rejected by the ledger.
        if metadata:
            canonical_dumps(metadata)
    except ServoError as exc:
        raise ServoError(f"asset metadata is not storable: {exc.message}") from exc
    output = TaskOutput(materialization_id=_new_ulid(), row_count=row_count).to_json()
    # ``metadata`` is Servo's addition to the contract's output (what the asset reported); downstream
    # assets receive the whole output dict through the dispatch payload.
    output["metadata"] = metadata
    return output


def _complete(
    client: CallbackClient,
    envelope: DispatchEnvelope,
    config: RunnerConfig,
    outcome: str,
    output: dict[str, Any] | None,
    error: TaskError | None,
    cancel_reason: str | None,
) -> AttemptResult:
    request = CompletedRequest(
        attempt=envelope.attempt,
        attempt_id=envelope.attempt_id,
        worker_id=config.worker_id,
        outcome=outcome,  # type: ignore[arg-type]
        traceparent=envelope.traceparent,
        completed_at_ms=_now_ms(),
        error=error,
    ).to_json()
    if output is not None:
        request["output"] = output
    reply = client.post("completed", request)
    if not reply.ok and reply.status != 409:
        logger.warning("completed refused: %s %s", reply.status, dict(reply.body))
    detail: dict[str, Any] = {"status": reply.status}
    if cancel_reason is not None:
        detail["cancelReason"] = cancel_reason
    return AttemptResult("completed", outcome, detail)
