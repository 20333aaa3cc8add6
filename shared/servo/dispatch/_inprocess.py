"""The in-process Transport: a request to a base URL mounted here is handed to its endpoint directly.

``servo dev`` runs the worker and the control plane in one process; over loopback HTTP each hop
(dispatch, ``started``, ``completed``) cost 3.4–4.7 ms of CPU in requests, the socket and a WSGI server
before any Servo code ran. Here the endpoint gets the same method, path, headers and body bytes and
answers the same status, headers and body. What the socket gave for free is kept on purpose:

- each request is served on a thread of its own, in a fresh context, as a threaded server serves a
  connection: the caller's ``timeout_s`` holds (the endpoint is left to finish, as a server would be),
  and nothing of the caller's context (the worker's per-task output capture) follows the request.
  Serving threads are kept a while for the next request (``ReusedThreads``);
- an endpoint that raises answers 500, as a WSGI server answers for a crashed application;
- a base URL nobody mounted goes to ``fallback`` (real HTTP), so a remote worker or API still works.

``begin`` is ``deliver`` for a caller that does not wait (the local dispatcher): its answer comes as a
call on the serving thread, so a delivery costs one hand-off, not a waiting thread's two.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from servo.dispatch._reused_threads import ReusedThreads
from servo.dispatch._transport import (
    Endpoint,
    HttpTransport,
    InboundRequest,
    Reply,
    Transport,
    TransportError,
    TransportTimeout,
)

logger = logging.getLogger(__name__)

_CRASHED = Reply(
    500,
    b'{"code":"INTERNAL","message":"internal error"}',
    {"Content-Type": "application/json"},
)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


Answer = Callable[["Reply | TransportError"], None]


@dataclass(slots=True)
class _Pending:
    reply: Reply | TransportError | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def answer(self, reply: Reply | TransportError) -> None:
        self.reply = reply
        self.done.set()


class InProcessTransport:
    """Hands requests to endpoints mounted by base URL (scheme and host:port); others go to ``fallback``.

    Args:
        fallback: the transport for every other URL; None = HTTP (``HttpTransport()``).
    """

    def __init__(self, fallback: Transport | None = None) -> None:
        self._fallback = fallback if fallback is not None else HttpTransport()
        self._mounted: dict[tuple[str, str], Endpoint] = {}
        self._lock = threading.Lock()
        self._threads = ReusedThreads("servo-inprocess")

    def mount(self, base_url: str, endpoint: Endpoint) -> None:
        """Serve requests to ``base_url``'s scheme and host:port with ``endpoint`` from now on."""
        with self._lock:
            self._mounted[_origin(base_url)] = endpoint

    def unmount(self, base_url: str) -> None:
        """Stop serving ``base_url`` here; its requests go to the fallback again."""
        with self._lock:
            self._mounted.pop(_origin(base_url), None)

    def serves(self, url: str) -> bool:
        """Whether a request to ``url`` is handed to an endpoint of this process."""
        return _origin(url) in self._mounted

    def deliver(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, *, timeout_s: float
    ) -> Reply:
        serve = self._serving(method, url, headers, body)
        if serve is None:
            return self._fallback.deliver(method, url, headers, body, timeout_s=timeout_s)
        pending = _Pending()
        self._run(url, serve, pending.answer)
        if not pending.done.wait(timeout_s):
            raise TransportTimeout(f"{method} {url} was not answered within {timeout_s:g}s")
        assert isinstance(pending.reply, Reply)
        return pending.reply

    def begin(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        answer: Answer,
        *,
        timeout_s: float,
    ) -> None:
        """``deliver`` without waiting: the request is served on a thread of this transport, which
        then calls ``answer`` with the reply (or the TransportError of a fallback delivery). No
        timeout is kept here: the caller keeps its own (the dispatcher's deadline).

        Raises:
            TransportError: the interpreter is shutting down.
        """
        serve: Callable[[], object] | None = self._serving(method, url, headers, body)
        if serve is None:
            serve = functools.partial(self._fall_back, method, url, headers, body, timeout_s)
        self._run(url, serve, answer)

    def _serving(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Callable[[], Reply] | None:
        """How the endpoint mounted for ``url`` answers the request; None when none is."""
        parts = urlsplit(url)
        endpoint = self._mounted.get((parts.scheme.lower(), parts.netloc.lower()))
        if endpoint is None:
            return None
        received = {name.lower(): value for name, value in headers.items()}
        received.setdefault("host", parts.netloc)  # as requests sends a Host the caller set
        received["content-length"] = str(len(body))
        request = InboundRequest(
            method=method.upper(),
            # What a WSGI server makes of the request line: the path percent-decoded, one leading "/".
            path="/" + unquote(parts.path, errors="replace").lstrip("/"),
            query=parts.query,
            headers=received,
            body=body,
        )
        # A fresh context, as a server's thread has: nothing of the caller's (the worker's per-task
        # output capture) follows the request.
        return functools.partial(contextvars.Context().run, _answer, endpoint, request)

    def _run(self, url: str, serve: Callable[[], object], answer: Answer) -> None:
        try:
            self._threads.run(serve, answer)  # type: ignore[arg-type]
        except RuntimeError as exc:  # the interpreter is shutting down: nobody can answer
            raise TransportError(f"{url} cannot be served: {exc}") from exc

    def _fall_back(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, timeout_s: float
    ) -> Reply | TransportError:
        try:
            return self._fallback.deliver(method, url, headers, body, timeout_s=timeout_s)
        except TransportError as exc:
            return exc
        except Exception as exc:  # a fallback that fails otherwise gave no answer either
            return TransportError(f"{type(exc).__name__}: {exc}")


def _answer(endpoint: Endpoint, request: InboundRequest) -> Reply:
    try:
        return endpoint.serve(request)
    except Exception:
        logger.exception("in-process %s %s failed", request.method, request.path)
        return _CRASHED
