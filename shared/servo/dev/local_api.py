"""The embedded control plane's API as one endpoint: over its local HTTP server and in process.

Both ways a request meets the same checks (a health probe, the local server's refusal of what a
foreign web page could send, the body size limit) and the same ``servo.http.app.respond``. In
process (``servo dev``'s worker reporting its callbacks, the dispatcher firing due timers) there is
no socket, no WSGI server and no Flask request: ~4 ms of CPU a hop on the helper machine.

Over HTTP, LocalApi is the WSGI app itself: werkzeug's Request parses what the server received, and
the reply is written as is. Flask's request context, URL map and session code ran around a single
catch-all view before (its refusals — a method no route takes, a newline in the path — are kept,
answered the same).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.test import Client
from werkzeug.wrappers import Request

from servo.core.errors import ServoError
from servo.dev.local_server import check_local_request
from servo.dispatch import InboundRequest, Reply
from servo.http.app import error_reply, http_error_reply, read_body, respond, within_limit
from servo.services.context import ServiceContext

_HEALTHY = Reply(200, b'{"status":"ok"}\n', {"Content-Type": "application/json"})
# The methods the router's catch-all rule took (HEAD with GET); any other is refused before routing.
_ROUTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})


class LocalApi:
    """Every route of the route table, for one ServiceContext (``ctx`` is read per request)."""

    def __init__(self, ctx: Callable[[], ServiceContext]) -> None:
        self._ctx = ctx

    def answer(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Any,
        body: Callable[[], bytes],
    ) -> Reply:
        """``headers``: a mapping whose ``get`` ignores case (werkzeug's, or lower-cased names)."""
        if path == "/healthz":
            return _HEALTHY
        try:
            check_local_request(method, headers, _mimetype(headers))
        except ServoError as exc:
            return error_reply(exc)
        return respond(self._ctx(), method, path, query, headers, body)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """The WSGI app of the local HTTP server."""
        request = Request(environ)
        reply = self._over_http(request)
        status = reply.status
        headers = [("Content-Length", str(len(reply.body))), *reply.headers.items()]
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'unknown').upper()}", headers)
        return [] if request.method == "HEAD" else [reply.body]

    def _over_http(self, request: Request) -> Reply:
        method, path = request.method, request.path
        if method not in _ROUTED_METHODS:
            return http_error_reply(405, str(MethodNotAllowed.description), path)
        if "\n" in path:  # no route takes a newline (the catch-all rule did not match one either)
            return http_error_reply(404, str(NotFound.description), path)
        return self.answer(method, path, request.args, request.headers, lambda: read_body(request))

    def test_client(self) -> Client:
        """A client calling the WSGI app directly, as Flask's ``test_client`` did."""
        return Client(self)

    def serve(self, request: InboundRequest) -> Reply:
        """The Endpoint of the Transport port: a request handed over in process."""
        query: dict[str, str] = {}
        for name, value in parse_qsl(request.query, keep_blank_values=True):
            query.setdefault(name, value)  # the first value of each, as over HTTP
        return self.answer(
            request.method, request.path, query, request.headers, lambda: within_limit(request.body)
        )


def _mimetype(headers: Any) -> str:
    return str(headers.get("content-type") or "").split(";", 1)[0].strip().lower()
