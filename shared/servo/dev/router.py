"""The emulator mode's API gateway: one base URL, each path proxied to its function's process.

It routes by the same table as API Gateway (``servo.http.routes``), so the local and deployed path →
function mapping cannot drift. A path no route knows is still proxied (to ``fallback``) so the
function itself answers with the API's JSON 404/405 body, not the router.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from types import TracebackType

import requests
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from servo.core.errors import InvalidInput, ServoError
from servo.dev.local_server import BoundedWSGIServer, check_local_request
from servo.dispatch import EnvOnceSession
from servo.http import routes
from servo.http.app import error_response, read_body

# Per-connection headers (RFC 9110 §7.6.1) and the ones requests rewrites after decoding the body.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)


class _QuietHandler(WSGIRequestHandler):
    # The functions log every request as structured JSON; a second access line per request is noise.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class Router:
    """A threaded reverse proxy on ``host:port`` in front of the function processes.

    Args:
        targets: function name → base URL of the process serving it (``http://127.0.0.1:P``).
        fallback: the function that answers paths no route matches.
    """

    def __init__(
        self,
        targets: Mapping[str, str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fallback: str = "runs",
        timeout_s: float = 120.0,
    ) -> None:
        if fallback not in targets:
            raise InvalidInput(f"fallback function {fallback!r} has no target")
        self._targets = {name: url.rstrip("/") for name, url in targets.items()}
        self._fallback = fallback
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._server = BoundedWSGIServer(host, port, self._wsgi, handler=_QuietHandler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self._server.server_address[0]!s}:{self._server.server_port}"

    def _session(self) -> requests.Session:
        # One keep-alive session per serving thread: Session is not documented as thread-safe.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = EnvOnceSession()
        return session

    def retarget(self, function: str, url: str) -> None:
        """Send ``function``'s requests to ``url`` from now on (it was restarted elsewhere)."""
        if function not in self._targets:
            raise InvalidInput(f"function {function!r} has no target")
        self._targets[function] = url.rstrip("/")

    def target_for(self, method: str, path: str) -> str:
        """The base URL of the function that serves ``method path``."""
        found = routes.match(method, path)
        function = self._fallback
        if isinstance(found, routes.Match):
            function = found.route.function
        elif isinstance(found, routes.Route):
            function = found.function  # wrong method: let the function answer 405
        return self._targets.get(function, self._targets[self._fallback])

    def _wsgi(self, environ: dict[str, object], start_response: object) -> Iterable[bytes]:
        request = Request(environ)
        if request.path == "/healthz":
            response = Response('{"status":"ok"}', content_type="application/json")
        else:
            try:
                check_local_request(request.method, request.headers, request.mimetype)
                response = self._forward(request, read_body(request))
            except ServoError as exc:
                response = error_response(exc)
        return response(environ, start_response)  # type: ignore[arg-type]

    def _forward(self, request: Request, body: bytes) -> Response:
        url = self.target_for(request.method, request.path) + request.full_path.rstrip("?")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            upstream = self._session().request(
                request.method,
                url,
                data=body,
                headers=headers,
                timeout=self._timeout_s,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            message = f'{{"code":"UNAVAILABLE","message":"function unreachable: {type(exc).__name__}"}}'
            return Response(message, status=503, content_type="application/json")
        out = [(k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP]
        return Response(upstream.content, status=upstream.status_code, headers=out)

    def start(self) -> Router:
        self._thread = threading.Thread(target=self._server.serve_forever, name="servo-router", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Router:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
