"""One request path for every HTTP function: route → service call → JSON response, logged once.

Each ``functions/<name>/main.py`` calls :func:`handle` with its own name, so a function only serves
its own routes; the local router calls it with ``function=None`` and serves them all.
"""

from __future__ import annotations

import errno
import hmac
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request, Response
from werkzeug.exceptions import ClientDisconnected, HTTPException
from werkzeug.wrappers import Request as BaseRequest

from servo import jsonlog
from servo.core.canonical_json import loads_strict
from servo.core.errors import (
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServoError,
    Unauthorized,
    Unavailable,
)
from servo.core.ids import validate_scope_id, validate_tenant_id
from servo.dispatch import Reply
from servo.dispatch._wsgi import wsgi_response
from servo.http import routes
from servo.http.responses import error_payload, internal_error_payload, json_body
from servo.services.context import ServiceContext
from servo.settings import INTERNAL_CREDENTIAL_HEADER, Settings

logger = logging.getLogger("servo.http")


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler gets: the parsed request in plain values (no Flask below this line)."""

    ctx: ServiceContext
    tenant_id: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    correlation_id: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


# A handler answers (status, JSON payload) or (status, raw bytes, content type, extra headers).
Result = tuple[int, Any] | tuple[int, bytes, str, dict[str, str]]
Handler = Callable[[Call], Result]


def new_correlation_id() -> str:
    """32 random hex digits naming a request in its answer and its log entries. Not a secret, so
    not from os.urandom (a system call for every request, every worker callback)."""
    return f"{random.getrandbits(128):032x}"


_HANDLER_TABLE: list[dict[str, Handler]] = []


def _handlers() -> dict[str, Handler]:
    if not _HANDLER_TABLE:
        # Imported lazily: a function imports only the services it serves, keeping cold starts short.
        from servo.http import handlers

        _HANDLER_TABLE.append(handlers.HANDLERS)
    return _HANDLER_TABLE[0]


def _check_auth(call: Call, route: routes.Route) -> None:
    """Internal routes (the sweep, due timers) need the internal credential in every mode: they write
    into any tenant's ledger. Deployed, the scheduler's sweep is the one request the platform
    authenticates instead (Settings.platform_authenticates_scheduler). The API needs the local static
    bearer token when one is set; callbacks carry task tokens instead, checked by their service."""
    if route.internal:
        if route.operation == "sweepTimers" and call.ctx.settings.platform_authenticates_scheduler:
            return
        given = call.header(INTERNAL_CREDENTIAL_HEADER) or ""
        if not hmac.compare_digest(given.encode(), call.ctx.settings.dispatch_secret.encode()):
            raise Unauthorized("missing or invalid internal credential")
        return
    token = call.ctx.settings.api_token
    if token is None or route.function == "callback":
        return
    given = call.header("authorization") or ""
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise Unauthorized("missing or invalid bearer token")


def _tenant(named: str | None, settings: Settings) -> str:
    tenant = validate_tenant_id(named or settings.default_tenant)
    if settings.single_tenant and tenant != settings.default_tenant:
        raise InvalidInput(
            f"this deployment serves tenant {settings.default_tenant!r} only; X-Servo-Tenant names {tenant!r}"
        )
    return tenant


# A full disk (or quota) under the local store: the request can be repeated once space is freed.
_OUT_OF_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def _serve(handler: Handler, call: Call) -> Result:
    try:
        return handler(call)
    except OSError as exc:
        if exc.errno not in _OUT_OF_SPACE:
            raise
        # Writes are whole objects, create-if-absent: what landed before the failure is what a
        # retry of the same request finds and completes, so repeating it is safe.
        raise Unavailable(
            "the server is out of storage space; free disk space and retry the request"
        ) from None


def handle(request: Request, ctx: ServiceContext, function: str | None = None) -> Response:
    """Answer a WSGI request (a function's, or the local HTTP server's)."""
    reply = respond(
        ctx,
        request.method,
        request.path,
        request.args,
        dict(request.headers.items()),
        lambda: read_body(request),
        function,
    )
    return wsgi_response(reply)


def respond(
    ctx: ServiceContext,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: Callable[[], bytes],
    function: str | None = None,
) -> Reply:
    """Answer one request given in plain values (over HTTP, or handed over in process).

    ``query`` holds the first value of each parameter; ``headers`` are matched regardless of case;
    ``body`` reads the body once the route is known, refusing one over the size limit.
    """
    started = time.perf_counter()
    lowered = {k.lower(): v for k, v in headers.items()}
    correlation_id = lowered.get("x-request-id") or new_correlation_id()
    traceparent = lowered.get("traceparent")
    status: int = 500
    payload: Any = None
    content_type = "application/json"
    extra: dict[str, str] = {}
    route_name = None
    labels: dict[str, str] = {"correlation_id": correlation_id}
    try:
        found = routes.match(method, path, function=function)
        if found is None:
            raise NotFound(f"no route for {method} {path}")
        if isinstance(found, routes.Route):
            extra = {"Allow": ", ".join(routes.allowed_methods(path, function=function))}
            status, payload = (
                405,
                {
                    "code": "METHOD_NOT_ALLOWED",
                    "message": f"{method} is not allowed on {path}",
                    "correlationId": correlation_id,
                },
            )
        else:
            route_name = found.route.operation
            params = dict(found.params)
            tenant = ctx.settings.default_tenant
            if "ws" in params:
                # Only workspace routes act for a tenant; a callback's token names its own.
                params["ws"] = validate_scope_id(params["ws"], "workspace")
                tenant = _tenant(lowered.get("x-servo-tenant"), ctx.settings)
            labels.update({k: v for k, v in params.items() if k in ("run_id", "task_id")})
            call = Call(
                ctx=ctx,
                tenant_id=tenant,
                params=params,
                query=dict(query.items()),
                headers=lowered,
                body=body(),
                correlation_id=correlation_id,
            )
            _check_auth(call, found.route)
            result = _serve(_handlers()[found.route.operation], call)
            if len(result) == 2:
                status, payload = result[0], result[1]
            else:
                status, payload, content_type, extra = result[0], result[1], result[2], result[3]
    except ServoError as exc:
        status, payload = exc.http_status, error_payload(exc, correlation_id)
        log = logger.warning if status < 500 else logger.error
        log(
            exc.message,
            extra=jsonlog.log_fields(
                labels=labels, traceparent=traceparent, error_code=exc.code, category=exc.code
            ),
        )
    except Exception:
        status, payload = 500, internal_error_payload(correlation_id)
        logger.exception("unhandled error", extra=jsonlog.log_fields(labels=labels, traceparent=traceparent))
    if logger.isEnabledFor(logging.INFO):  # the entry is built only when someone reads it
        logger.info(
            f"{method} {path} {status}",
            extra=jsonlog.log_fields(
                labels=labels,
                traceparent=traceparent,
                httpRequest={"requestMethod": method, "requestUrl": path, "status": status},
                latency_ms=round((time.perf_counter() - started) * 1000, 3),
                route=route_name,
                function=function,
            ),
        )
    data = payload if isinstance(payload, bytes) else json_body(payload)
    return Reply(status, data, {"Content-Type": content_type, "X-Request-Id": correlation_id, **extra})


# The largest request body any route takes: Cloud Functions' own limit, so the local stacks refuse
# what a deployment would (a worker's logs callback, the largest body, stays far below it).
MAX_REQUEST_BYTES = 32 * 1024 * 1024


def read_body(request: BaseRequest) -> bytes:
    """The request body, refused with 413 above MAX_REQUEST_BYTES, declared or not (chunked)."""
    declared = request.content_length
    if declared is not None and declared > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {MAX_REQUEST_BYTES}")
    try:
        body = request.stream.read(MAX_REQUEST_BYTES + 1)
    except (OSError, ClientDisconnected):  # stalled past the server's socket timeout, or went away
        raise InvalidInput("the request body was not received in full") from None
    return within_limit(body)


def within_limit(body: bytes) -> bytes:
    """``body``, refused with 413 above MAX_REQUEST_BYTES (a body handed over whole, in process)."""
    if len(body) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"request body is over the limit of {MAX_REQUEST_BYTES} bytes")
    return body


def parse_json_object(body: bytes, what: str = "request body") -> dict[str, Any]:
    """A JSON object from a request body, refused with a 400 when it is anything a service could not
    store: invalid UTF-8, a lone surrogate, an integer outside 64 bits, a duplicate key or nesting
    past the parser's limit (floats are allowed here: a progress or a metric may be one)."""
    if not body:
        return {}
    try:
        value = loads_strict(body, allow_floats=True)
    except InvalidInput as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc.message}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return value


def http_error_reply(status: int, message: str, path: str) -> Reply:
    """A refusal of the HTTP layer itself (no rule for the path or the method), in the API's JSON shape."""
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(
        status, "BAD_REQUEST" if status < 500 else "INTERNAL"
    )
    reply = _json_error_reply(status, code, message)
    if status != 405:
        return reply
    # The route table, not the server's catch-all rule, knows which methods this path serves.
    allow = ", ".join(routes.allowed_methods(path))
    return Reply(status, reply.body, {**reply.headers, "Allow": allow})


def install_json_errors(app: Flask) -> None:
    """Errors raised before our handler runs (routing, undecodable bodies) answer in the API's JSON shape.

    Werkzeug refuses some paths before any view runs (a newline in a segment), and functions-framework
    decodes CloudEvent bodies itself; without this they would answer an HTML page or a 500.
    """

    def http_error(exc: HTTPException) -> Response:
        from flask import request

        return wsgi_response(http_error_reply(exc.code or 500, exc.description or exc.name, request.path))

    def undecodable(exc: UnicodeDecodeError) -> Response:
        return _json_error(400, "BAD_REQUEST", "request body is not valid UTF-8")

    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(UnicodeDecodeError, undecodable)


def install_json_errors_in_current_app() -> None:
    """For a function's main.py: functions-framework imports it inside its app's context."""
    from flask import current_app, has_app_context

    if has_app_context():
        install_json_errors(current_app)


def error_response(exc: ServoError) -> Response:
    """A refusal decided before a request reaches :func:`handle` (the local server's own checks)."""
    return wsgi_response(error_reply(exc))


def error_reply(exc: ServoError) -> Reply:
    """The same refusal, for a request handed over in process."""
    return _json_error_reply(exc.http_status, exc.code, exc.message)


def _json_error(status: int, code: str, message: str) -> Response:
    return wsgi_response(_json_error_reply(status, code, message))


def _json_error_reply(status: int, code: str, message: str) -> Reply:
    correlation_id = new_correlation_id()
    body = json_body({"code": code, "message": message, "correlationId": correlation_id})
    return Reply(status, body, {"Content-Type": "application/json", "X-Request-Id": correlation_id})


class HandlerFailed(Exception):
    """Raised by a CloudEvent function around its own work, so a failure there stays a 500 (the
    event is redelivered) while anything raised before it — the framework decoding a malformed
    event — is answered 400 and dropped instead of being redelivered forever."""


def install_cloudevent_errors_in_current_app() -> None:
    from flask import current_app, has_app_context

    if not has_app_context():
        return
    install_json_errors(current_app)

    def any_error(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return _json_error(exc.code or 500, "BAD_REQUEST", exc.description or exc.name)
        if isinstance(exc, HandlerFailed):
            logger.error("cloudevent handler failed; the event will be redelivered", exc_info=exc.__cause__)
            return _json_error(500, "INTERNAL", "handler failed; retry")
        logger.warning(f"malformed CloudEvent dropped: {exc!r}")
        return _json_error(400, "BAD_REQUEST", f"malformed CloudEvent: {type(exc).__name__}")

    current_app.register_error_handler(Exception, any_error)
