"""The one error tree of Servo.

    ServoError                      code INTERNAL, HTTP 500
    ├── InvalidInput                code BAD_REQUEST, 400: bad input; nothing was changed
    │   ├── CanonicalJsonError      a value canonical JSON cannot encode (floats, non-str keys, ...)
    │   ├── InvalidAssetKey
    │   ├── InvalidPartitionKey
    │   ├── InvalidTaskId           a ct1_ callback task id that does not decode
    │   ├── InvalidId               any other malformed identifier
    │   ├── InvalidEvent            a ledger object that is not a valid event envelope
    │   ├── InvalidMessage          a worker-protocol message that does not validate
    │   ├── PlanError               selection/graph problems (unknown asset, cycle, ...)
    │   └── InvalidSchedule         a schedule definition field (cron, timezone, limits, ...) is bad
    ├── Unauthorized                code UNAUTHORIZED, 401
    ├── Forbidden                   code FORBIDDEN, 403: a cross-site request to the local server
    ├── NotFound                    code NOT_FOUND, 404
    ├── Conflict                    code CONFLICT, 409
    │   └── PreconditionFailed      a storage precondition (create-if-absent / generation) lost
    ├── Gone                        code GONE, 410
    ├── PayloadTooLarge             code PAYLOAD_TOO_LARGE, 413: a body above MAX_REQUEST_BYTES
    ├── UnsupportedMediaType        code UNSUPPORTED_MEDIA_TYPE, 415: a local POST that is not JSON
    ├── Unavailable                 code UNAVAILABLE, 503: the store cannot take writes (disk full)
    ├── CallbackRejected            a worker callback refused; answered in the worker-protocol shape
    └── InvalidTransition           a state-machine move the tables do not allow (a bug or a stale fact)

Errors carry data (``details``) rather than being parsed from messages; the HTTP edge maps
``http_status``/``code`` in one place. ``servo.core`` raises only these.
"""

from __future__ import annotations

from typing import Any


class ServoError(Exception):
    """Root of every error Servo raises on purpose."""

    code = "INTERNAL"
    http_status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details) if details else {}

    def __str__(self) -> str:
        return self.message


class InvalidInput(ServoError):
    code = "BAD_REQUEST"
    http_status = 400


class CanonicalJsonError(InvalidInput):
    pass


class InvalidAssetKey(InvalidInput):
    pass


class InvalidPartitionKey(InvalidInput):
    pass


class InvalidTaskId(InvalidInput):
    pass


class InvalidId(InvalidInput):
    pass


class InvalidEvent(InvalidInput):
    pass


class InvalidMessage(InvalidInput):
    pass


class PlanError(InvalidInput):
    pass


class InvalidSchedule(InvalidInput):
    """A bad schedule definition; ``details["field"]`` names the field (``cron``, ``timezone``, ...)."""


class Unauthorized(ServoError):
    code = "UNAUTHORIZED"
    http_status = 401


class Forbidden(ServoError):
    code = "FORBIDDEN"
    http_status = 403


class NotFound(ServoError):
    code = "NOT_FOUND"
    http_status = 404


class Conflict(ServoError):
    code = "CONFLICT"
    http_status = 409


class PreconditionFailed(Conflict):
    pass


class Gone(ServoError):
    code = "GONE"
    http_status = 410


class PayloadTooLarge(ServoError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class UnsupportedMediaType(ServoError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415


class Unavailable(ServoError):
    """Temporarily unable to serve (the store is out of space): nothing was changed; retry later."""

    code = "UNAVAILABLE"
    http_status = 503


class InvalidTransition(ServoError):
    """A state move the transition tables forbid; carries ``entity``, ``from_state``, ``to_state``."""

    def __init__(self, entity: str, from_state: str, to_state: str, reason: str = "") -> None:
        message = f"invalid {entity} transition {from_state} -> {to_state}"
        if reason:
            message += f": {reason}"
        super().__init__(message, details={"entity": entity, "from": from_state, "to": to_state})
        self.entity = entity
        self.from_state = from_state
        self.to_state = to_state


class CallbackRejected(ServoError):
    """A callback refused with the worker-protocol error body (``error`` is the snake_case reason)."""

    def __init__(self, status: int, error: str, message: str, **fields: Any) -> None:
        super().__init__(message, details={k: v for k, v in fields.items() if v is not None})
        self.http_status = status
        self.error = error
        self.code = {
            400: "BAD_REQUEST",
            401: "UNAUTHORIZED",
            404: "NOT_FOUND",
            410: "GONE",
            503: "UNAVAILABLE",
        }.get(status, "CONFLICT")

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, **self.details}
