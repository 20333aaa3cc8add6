"""Sensor evaluations on the worker (automation §6.2): ``POST /sensor-evaluations``.

The envelope names the sensor, the evaluation, the cursor it starts from and its items (push messages,
watched runs). The sensor is called under the timeout, once per item (or once for a poll), the cursor
threaded from call to call; one result is posted to ``{callbackBaseUrl}/v1/sensor-evaluations/{id}/result``
with the evaluation's own token. A raised error, an unknown sensor or a timeout is reported ERROR with its
message: the control plane keeps the cursor and evaluates again after the interval.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from servo.dispatch import Transport, json_request_body
from servo.sdk._sensors import (
    PushMessage,
    SensorContext,
    SensorDefinition,
    WatchedRun,
    evaluation_outcome,
)

logger = logging.getLogger("servo.worker")

MAX_LOG_BYTES = 64 * 1024
_REQUIRED = ("sensorId", "evaluationId", "callbackBaseUrl", "evaluationToken")


class EnvelopeError(ValueError):
    """A malformed evaluation envelope (answered 400: redelivering it cannot help)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    sensor_id: str
    evaluation_id: str
    cursor: str | None
    last_evaluation_at: int | None
    items: tuple[Mapping[str, Any], ...]
    callback_base_url: str
    token: str
    timeout_s: float

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Envelope:
        for name in _REQUIRED:
            if not isinstance(body.get(name), str) or not body[name]:
                raise EnvelopeError(f"{name} must be a non-empty string")
        cursor, items = body.get("cursor"), body.get("items") or []
        if cursor is not None and not isinstance(cursor, str):
            raise EnvelopeError("cursor must be a string or null")
        if not isinstance(items, list) or not all(isinstance(i, dict) and "itemId" in i for i in items):
            raise EnvelopeError("items must be a list of objects with an itemId")
        timeout = body.get("timeoutSeconds", 60)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 3600:
            raise EnvelopeError("timeoutSeconds must be an integer in 1..3600")
        last = body.get("lastEvaluationAt")
        return cls(
            body["sensorId"],
            body["evaluationId"],
            cursor,
            last if isinstance(last, int) and not isinstance(last, bool) else None,
            tuple(items),
            body["callbackBaseUrl"].rstrip("/"),
            body["evaluationToken"],
            float(timeout),
        )


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.StringIO()

    def emit(self, record: logging.LogRecord) -> None:
        self.buffer.write(self.format(record) + "\n")


def _message(raw: Mapping[str, Any]) -> PushMessage:
    try:
        data = base64.b64decode(str(raw.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        data = b""
    return PushMessage(
        message_id=str(raw.get("messageId", "")),
        data=data,
        attributes=dict(raw.get("attributes") or {}),
        publish_time=raw.get("publishTime"),
    )


def _run(raw: Mapping[str, Any]) -> WatchedRun:
    return WatchedRun(
        run_id=str(raw.get("runId", "")),
        state=str(raw.get("state", "")),
        labels=dict(raw.get("labels") or {}),
        selection=tuple(raw.get("selection") or ()),
        partition_key=raw.get("partitionKey"),
        failed_tasks=tuple(raw.get("failedTasks") or ()),
    )


def evaluate(definition: SensorDefinition | None, env: Envelope) -> dict[str, Any]:
    """The result body of one evaluation (never raises: every failure is an ERROR result)."""
    if definition is None:
        return {"status": "ERROR", "error": f"this worker has no sensor {env.sensor_id!r}"}
    capture = _Capture()
    log = logging.getLogger(f"servo.sensor.{env.sensor_id}")
    log.setLevel(logging.INFO)  # the evaluation's log keeps ctx.log.info, whatever the root's level
    log.addHandler(capture)
    outcome: dict[str, Any] = {}

    def calls() -> None:
        cursor, updated, requests_out, reason = env.cursor, False, [], None
        last = (
            None
            if env.last_evaluation_at is None
            else datetime.fromtimestamp(env.last_evaluation_at / 1000, UTC)
        )
        for item in env.items or ({},):
            ctx = SensorContext(
                sensor_id=env.sensor_id,
                evaluation_id=env.evaluation_id,
                cursor=cursor,
                now=datetime.now(UTC),
                last_evaluation_at=last,
                message=_message(item["message"]) if "message" in item else None,
                run=_run(item["run"]) if "run" in item else None,
                log=log,
            )
            result = evaluation_outcome(definition.fn(ctx))
            if ctx.cursor_updated:
                cursor, updated = ctx.next_cursor, True
            requests_out += [r.to_wire(item.get("itemId")) for r in result.run_requests]
            reason = result.skip_reason if result.skip_reason is not None else reason
        outcome.update(
            status="TRIGGERED" if requests_out else "SKIPPED",
            runRequests=requests_out,
            cursorUpdated=updated,
            itemsProcessed=len(env.items),
        )
        if updated:
            outcome["cursor"] = cursor
        if reason:
            outcome["skipReason"] = reason

    failure: list[BaseException] = []

    def target() -> None:
        try:
            calls()
        except BaseException as exc:  # the user's code: any error is the evaluation's ERROR
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"sensor-{env.evaluation_id}", daemon=True)
    thread.start()
    thread.join(env.timeout_s)
    log.removeHandler(capture)
    if thread.is_alive():
        result: dict[str, Any] = {"status": "ERROR", "error": f"timed out after {env.timeout_s:g} s"}
    elif failure:
        exc = failure[0]
        result = {"status": "ERROR", "error": f"{type(exc).__name__}: {exc}"}
    else:
        result = outcome
    text = capture.buffer.getvalue()
    if text:
        result["log"] = text.encode("utf-8")[-MAX_LOG_BYTES:].decode("utf-8", "ignore")
    return result


def report(transport: Transport, env: Envelope, result: Mapping[str, Any]) -> int:
    """POST the result; the status the control plane answered (409: already reported).

    Raises:
        TransportError: the control plane could not be reached.
    """
    url = f"{env.callback_base_url}/v1/sensor-evaluations/{env.evaluation_id}/result"
    headers = {"Authorization": f"Bearer {env.token}", "Content-Type": "application/json"}
    return transport.deliver("POST", url, headers, json_request_body(dict(result)), timeout_s=30).status


SensorLoader = Callable[[], Mapping[str, SensorDefinition]]
