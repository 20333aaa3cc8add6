"""The embedded control plane's API as one endpoint: over its local HTTP server and in process.

Both ways a request meets the same checks (a health probe, the local server's refusal of what a
foreign web page could send, the body size limit) and the same ``servo.http.app.respond``. In
process (``servo dev``'s worker reporting its callbacks, the dispatcher firing due timers) there is
no socket, no WSGI server and no Flask request: ~4 ms of CPU a hop on the helper machine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from servo.core.errors import ServoError
from servo.dev.local_server import check_local_request
from servo.dispatch import InboundRequest, Reply
from servo.http.app import error_reply, respond, within_limit
from servo.services.context import ServiceContext

_HEALTHY = Reply(200, b'{"status":"ok"}\n', {"Content-Type": "application/json"})


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
