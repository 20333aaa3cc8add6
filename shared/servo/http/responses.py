"""Error → HTTP response mapping, in one place.

API errors are ``{code, message, details?, correlationId}`` (design §6); worker-callback errors keep
the reference's ``{error, message, state?, expected…}`` shape (contracts §10), carried by
``CallbackRejected``. Every error response is logged as one structured entry by the caller.
"""

from __future__ import annotations

import json
from typing import Any

from servo.core.errors import CallbackRejected, ServoError

# Built once: json.dumps with options builds an encoder on every call (every answer of every route).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def json_body(payload: Any) -> bytes:
    return _ENCODER.encode(payload).encode("utf-8")


def error_payload(exc: ServoError, correlation_id: str) -> dict[str, Any]:
    if isinstance(exc, CallbackRejected):
        return exc.body()
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details:
        body["details"] = exc.details
    body["correlationId"] = correlation_id
    return body


def internal_error_payload(correlation_id: str) -> dict[str, Any]:
    # Never leak a stack trace to a caller; the structured log entry carries it under the same id.
    return {"code": "INTERNAL", "message": "internal error", "correlationId": correlation_id}
