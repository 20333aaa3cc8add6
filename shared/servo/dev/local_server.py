"""The HTTP server of the local stacks, bounded, and the checks that keep other web pages out of it.

Werkzeug's threaded server starts one thread per connection and waits for a silent client forever:
400 stalled uploads held 421 threads. Here a connection gets a thread only while one of
``max_connections`` slots is free (a connection that finds none within a second is answered 503 and
closed), and a client silent for ``timeout_s`` is disconnected, which frees its slot.

Any web page the developer opens can reach ``127.0.0.1``: a ``text/plain`` or form POST needs no CORS
preflight, and DNS rebinding points a foreign name at the loopback address. So the local server serves
only requests addressed to a loopback name, refuses any ``Origin`` but its own, and takes only JSON
bodies on the methods that change something.
"""

from __future__ import annotations

import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler

from servo.core.errors import Forbidden, UnsupportedMediaType

DEFAULT_MAX_CONNECTIONS = 128
DEFAULT_TIMEOUT_S = 10.0
_SLOT_WAIT_S = 1.0
_BUSY_BODY = b'{"code":"UNAVAILABLE","message":"too many connections; retry shortly"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Retry-After: 1\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BoundedWSGIServer(BaseWSGIServer):
    """A WSGI server with at most ``max_connections`` connections in service and an idle timeout."""

    multithread = True  # what the WSGI environ reports: requests are served concurrently

    def __init__(
        self,
        host: str,
        port: int,
        app: Any,
        *,
        handler: type[WSGIRequestHandler] = WSGIRequestHandler,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        # StreamRequestHandler applies ``timeout`` to the socket; HTTP/1.1 keeps connections alive.
        bounded = type(handler.__name__, (handler,), {"timeout": timeout_s, "protocol_version": "HTTP/1.1"})
        super().__init__(host, port, app, handler=bounded)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(timeout=_SLOT_WAIT_S):
            _refuse(request)
            self.shutdown_request(request)
            return
        worker = threading.Thread(
            target=self._serve, args=(request, client_address), name="servo-http", daemon=True
        )
        worker.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()


def _refuse(request: socket.socket) -> None:
    try:
        request.settimeout(1.0)
        request.sendall(_BUSY)
    except OSError:
        pass  # the client is gone or not reading: closing is all that is left


def check_local_request(method: str, headers: Any, mimetype: str) -> None:
    """Refuse what a foreign web page could send to the local server (``headers``: a mapping whose
    ``get`` takes lower-cased names, as werkzeug's and the in-process requests' do).

    Raises:
        Forbidden: the Host is not a loopback name (DNS rebinding), or an Origin other than the
            server's own is given (``null`` included).
        UnsupportedMediaType: a method that changes something without a JSON body.
    """
    host = headers.get("host") or ""
    if _hostname(f"http://{host}") not in _LOOPBACK:
        raise Forbidden("the local server answers only requests addressed to 127.0.0.1 or localhost")
    origin = headers.get("origin")
    if origin is not None and (_hostname(origin) not in _LOOPBACK or urlsplit(origin).netloc != host):
        raise Forbidden("cross-origin requests are not accepted by the local server")
    # A write with no body (cancel, sweep) carries nothing a form could forge past the Origin check;
    # a body must be JSON, which a foreign page cannot send without a CORS preflight.
    if method.upper() in _WRITES and _has_body(headers) and mimetype != "application/json":
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")


def _has_body(headers: Any) -> bool:
    if headers.get("transfer-encoding"):
        return True
    try:
        return int(headers.get("content-length") or 0) > 0
    except ValueError:
        return True


def _hostname(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
