"""The worker's side of the task callbacks (contracts §10): one client per attempt.

Transport failures and 5xx answers are retried with a short backoff; every other answer (2xx, 4xx) is
returned to the caller, who decides what it means (a 409 on ``started`` means "do not run", a 410 on
``heartbeat`` means "stop"). Bodies are always rendered camelCase by the protocol models.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from servo.dispatch import Reply, Transport, TransportError, json_request_body

logger = logging.getLogger("servo.worker")

ABORT_ON_STARTED = frozenset(
    {
        "task_already_terminal",
        "attempt_already_completed",
        "attempt_mismatch",
        "attempt_id_mismatch",
        "attempt_already_started",  # another delivery of this attempt runs it (callbacks.task_started)
    }
)


# Code points with no UTF-8 form: lone surrogates an asset printed or returned, or bytes smuggled in
# by "surrogateescape". The control plane refuses them (400), which would lose the attempt's logs or
# its completion, so they are sent as U+FFFD.
_SURROGATES = re.compile("[\ud800-\udfff]")
# How JSON (ASCII, as requests writes it) spells every surrogate, among a few other characters.
_MAYBE_SURROGATE = b"\\ud"


def valid_text(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {valid_text(k): valid_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [valid_text(item) for item in value]
    return value


class CallbackUnavailable(Exception):
    """The control plane could not be reached (or kept answering 5xx) after every retry."""


@dataclass(frozen=True, slots=True)
class CallbackReply:
    """A non-5xx answer of the control plane. Its body is decoded when read: an accepted ``started``
    or ``completed`` is acted on by its status alone."""

    status: int
    answer: Reply = field(default_factory=lambda: Reply(200))

    @property
    def body(self) -> Mapping[str, Any]:
        """The answer's JSON object (``{}`` when it is empty or not one)."""
        return self.answer.json_object()

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str | None:
        value = self.body.get("error") if not self.ok else None
        return value if isinstance(value, str) else None


class CallbackClient:
    """POSTs one attempt's callbacks to ``{base}/api/v1/tasks/{taskId}/{action}`` with its task token."""

    __slots__ = ("_backoff_s", "_base", "_headers", "_timeout_s", "_transport", "_tries")

    def __init__(
        self,
        transport: Transport,
        callback_base_url: str,
        task_id: str,
        task_token: str,
        *,
        tries: int = 4,
        backoff_s: float = 0.25,
        timeout_s: float = 30.0,
    ) -> None:
        self._transport = transport
        self._base = f"{callback_base_url.rstrip('/')}/api/v1/tasks/{quote(task_id, safe='')}"
        self._headers = {"Authorization": f"Bearer {task_token}", "Content-Type": "application/json"}
        self._tries = tries
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s

    def post(self, action: str, body: Mapping[str, Any], *, tries: int | None = None) -> CallbackReply:
        """POST ``body`` to ``action``; retry transport errors and 5xx.

        Raises:
            CallbackUnavailable: every try failed with a transport error or a 5xx.
        """
        url = f"{self._base}/{action}"
        data = json_request_body(body)
        if _MAYBE_SURROGATE in data:  # rare: only then is the body walked for lone surrogates
            data = json_request_body(valid_text(body))
        total = tries if tries is not None else self._tries
        last = ""
        for n in range(total):
            if n:
                time.sleep(self._backoff_s * 2 ** (n - 1))
            try:
                reply = self._transport.deliver("POST", url, self._headers, data, timeout_s=self._timeout_s)
            except TransportError as exc:
                last = str(exc)
                continue
            if reply.status >= 500:
                last = f"HTTP {reply.status}: {reply.body[:200].decode('utf-8', 'replace')}"
                continue
            # An empty 2xx body is legal (contracts §10: "treat as continue").
            return CallbackReply(reply.status, reply)
        logger.warning("callback %s failed after %d tries: %s", action, total, last)
        raise CallbackUnavailable(f"{action} callback failed after {total} tries: {last}")
