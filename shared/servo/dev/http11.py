"""The local server's HTTP/1.1 connection handler: keep-alive, and no more parsing than WSGI needs.

Werkzeug's development handler closes every connection after one answer (so each request cost a TCP
connection and a serving thread), parses headers with ``email.parser`` and formats a date and an
access line per request: about 1 ms of CPU a request on the helper machine before the app ran, which
is most of a trigger's HTTP cost. Here a connection serves request after request while its client
keeps it: a body the app did not read is skipped (it is never taken for the next request), and the
connection is closed instead whenever its framing is in doubt (HTTP/1.0, ``Connection: close``, a
chunked body, a malformed request).

Malformed requests are answered in the API's JSON error shape, with the status ``http.server`` would
give (400, 414, 431, 505). An app that raises answers a JSON 500 and the connection is closed.
"""

from __future__ import annotations

import email.utils
import logging
import socketserver
import sys
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import IO, Any, cast
from urllib.parse import unquote, urlsplit

from werkzeug.serving import DechunkedInput
from werkzeug.wsgi import LimitedStream

from servo.http.app import http_error_reply

logger = logging.getLogger("servo.dev")

_MAX_LINE = 65536  # as http.server: a longer request line is 414, a longer header line 431
_MAX_HEADERS = 100
_DRAIN_CHUNK = 1 << 20
# An unread body is read and dropped (up to this much) so the client sees the answer rather than a
# reset connection (a 413 is answered before the body is read).
_MAX_DRAIN = 1 << 30
_NO_BODY_STATUSES = frozenset({204, 304})


class HttpError(Exception):
    """A request the handler refuses before any app sees it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Date:
    """The ``Date`` header's value, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._text = email.utils.formatdate(second, usegmt=True)
            self._second = second
        return self._text


_DATE = _Date()


class KeepAliveHandler(socketserver.StreamRequestHandler):
    """Serves one connection's requests to the server's WSGI ``app`` until either side closes it.

    ``timeout`` (seconds, set by the server) bounds every read: a client silent that long, between
    requests or in the middle of one, is disconnected.
    """

    server_version = "servo-dev"
    disable_nagle_algorithm = True  # an answer is one write: send it at once

    def handle(self) -> None:
        waiting = getattr(self.server, "waiting", None)
        while True:
            if waiting is not None and not waiting(self.connection, True):
                return  # the server is shutting down
            try:
                line = self.rfile.readline(_MAX_LINE + 1)
            except OSError:  # timed out between requests, or reset
                return
            finally:
                if waiting is not None:
                    waiting(self.connection, False)
            if not line:
                return
            try:
                if not self._one(line):
                    return
            except OSError:  # the client went away mid-request, or stalled past the timeout
                return

    def _one(self, line: bytes) -> bool:
        """Serve the request that starts with ``line``; whether the connection may serve another."""
        try:
            environ, keep = self._environ(line)
        except HttpError as exc:
            refusal = http_error_reply(exc.status, exc.message, "")
            self._send(exc.status, list(refusal.headers.items()), refusal.body, close=True)
            return False
        if environ.get("HTTP_EXPECT", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        status, headers, body = self._run(environ)
        keep = keep and status is not None
        if status is None:
            status, headers, body = 500, [("Content-Type", "application/json")], _INTERNAL
        if environ["REQUEST_METHOD"] == "HEAD":
            body = b""
        self._send(status, headers, body, close=not keep)
        # What the app left unread is read and dropped, after the answer (a client still sending
        # would otherwise see a reset, not the answer): the next request starts after it.
        return _drained(environ["wsgi.input"]) and keep

    def _run(self, environ: dict[str, Any]) -> tuple[int | None, list[tuple[str, str]], bytes]:
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[..., Any]:
            started[:] = [status, headers]
            return _no_write

        try:
            result: Iterable[bytes] = self.server.app(environ, start_response)  # type: ignore[attr-defined]
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            status, headers = started
            return int(status.split(None, 1)[0]), headers, body
        except Exception:
            logger.exception(
                "the local server's app failed on %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"]
            )
            return None, [], b""

    def _environ(self, line: bytes) -> tuple[dict[str, Any], bool]:
        """The WSGI environ of the request starting with ``line`` (its headers read from the socket),
        and whether the connection may be kept after it."""
        if len(line) > _MAX_LINE:
            raise HttpError(414, "the request line is too long")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3:
            raise HttpError(400, f"malformed request line {line[:100]!r}")
        method, target, version = parts
        major = _major(version)
        if major != 1:
            raise HttpError(505 if major else 400, f"HTTP version {version[:20]!r} is not served")
        try:
            url = urlsplit(target)
        except ValueError:
            raise HttpError(400, f"malformed request target {target[:100]!r}") from None
        # As werkzeug's server reads the target: "//a/b" is a path, "http://host/p" names its host.
        path = f"/{url.netloc}{url.path}" if url.netloc and not url.scheme else url.path
        address = cast(tuple[str, int], self.server.server_address)
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            # WSGI strings: the UTF-8 bytes of the percent-decoded path, one code point per byte.
            "PATH_INFO": _wsgi_str(unquote(path)),
            "QUERY_STRING": _wsgi_str(url.query),
            "REQUEST_URI": _wsgi_str(target),
            "RAW_URI": _wsgi_str(target),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": self.client_address[1],
            "SERVER_NAME": address[0],
            "SERVER_PORT": str(address[1]),
            "SERVER_PROTOCOL": version,
        }
        connection = self._headers(environ)
        if url.scheme and url.netloc:
            environ["HTTP_HOST"] = url.netloc
        keep = version != "HTTP/1.0" and "close" not in connection
        length = environ.get("CONTENT_LENGTH")
        if "HTTP_TRANSFER_ENCODING" in environ:
            if length is not None:
                raise HttpError(400, "a request cannot declare both Content-Length and Transfer-Encoding")
            if environ["HTTP_TRANSFER_ENCODING"].strip().lower() != "chunked":
                raise HttpError(400, "only the chunked transfer encoding is accepted")
            environ["wsgi.input"] = DechunkedInput(cast(IO[bytes], self.rfile))
            environ["wsgi.input_terminated"] = True
            # Trailers after the last chunk are not parsed: the connection ends with this request.
            return environ, False
        if length is not None and not (length.isascii() and length.isdigit()):
            raise HttpError(400, f"invalid Content-Length {length[:40]!r}")
        environ["wsgi.input"] = _Body(cast(IO[bytes], self.rfile), int(length or 0))
        return environ, keep

    def _headers(self, environ: dict[str, Any]) -> str:
        """Reads the header lines into ``environ``; returns the Connection header, lower-cased."""
        for _ in range(_MAX_HEADERS + 1):
            line = self.rfile.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                raise HttpError(431, "a header line is too long")
            if line in (b"\r\n", b"\n", b""):
                return str(environ.get("HTTP_CONNECTION", "")).lower()
            if line[:1] in (b" ", b"\t"):
                raise HttpError(400, "folded header lines are not accepted")
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not name or name != name.strip():
                raise HttpError(400, f"malformed header line {line[:100]!r}")
            if "_" in name:
                continue  # as werkzeug: X_Foo would be indistinguishable from X-Foo in the environ
            key = name.upper().replace("-", "_")
            value = value.strip(" \t\r\n")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                if key in environ and environ[key] != value:
                    raise HttpError(400, f"conflicting {name} headers")
            else:
                key = f"HTTP_{key}"
                if key in environ:
                    value = f"{environ[key]},{value}"
            environ[key] = value
        raise HttpError(431, f"more than {_MAX_HEADERS} header lines")

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes, *, close: bool) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        head = [f"HTTP/1.1 {status} {reason}", f"Server: {self.server_version}", f"Date: {_DATE.now()}"]
        head.extend(f"{name}: {value}" for name, value in headers)
        if not any(name.lower() == "content-length" for name, _ in headers) and not (
            status < 200 or status in _NO_BODY_STATUSES
        ):
            head.append(f"Content-Length: {len(body)}")
        if close:
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


class _Body(LimitedStream):
    """A body framed by its Content-Length, which remembers a client that stopped sending it."""

    broken = False

    def on_disconnect(self, error: Exception | None = None) -> None:
        self.broken = True
        super().on_disconnect(error)


def _drained(stream: Any) -> bool:
    """Reads what is left of a request body; whether all of it was (the next request follows it)."""
    if isinstance(stream, _Body) and (stream.broken or stream.is_exhausted):
        return not stream.broken
    total = 0
    try:
        while total < _MAX_DRAIN:
            chunk = stream.read(_DRAIN_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if isinstance(stream, _Body) and stream.is_exhausted:
                return True
    except Exception:  # the client went away, or the chunked framing is broken
        return False
    return False


def _major(version: str) -> int | None:
    """The major number of an ``HTTP/x.y`` version; None when it is not one."""
    name, _, number = version.partition("/")
    major, dot, minor = number.partition(".")
    if name != "HTTP" or not dot or not (major.isdigit() and minor.isdigit() and number.isascii()):
        return None
    return int(major)


def _wsgi_str(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


def _no_write(data: bytes) -> None:
    raise NotImplementedError("the local server's apps return their body; write() is not supported")


_INTERNAL = b'{"code":"INTERNAL","message":"internal error"}'
