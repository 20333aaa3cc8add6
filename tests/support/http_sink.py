"""A tiny threaded HTTP server that records every request and answers with a programmed status sequence.

Used to observe deliveries from task queues: what arrived (path, headers, body), when it arrived and when
its answer went out, and how the receiver answered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the sink saw it. Times are epoch seconds; header names are lower-cased."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    arrived_s: float
    answered_s: float
    status: int


@dataclass(slots=True)
class _Program:
    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    default_status: int = 200
    default_delay_s: float = 0.0

    def next(self) -> tuple[int, float]:
        status = self.statuses.pop(0) if self.statuses else self.default_status
        delay = self.delays.pop(0) if self.delays else self.default_delay_s
        return status, delay


class HttpSink:
    """Records requests on 127.0.0.1 at a free port; ``program`` sets how each path answers."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self._arrivals: list[tuple[str, float]] = []
        self._programs: dict[str, _Program] = {}
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                arrived = time.time()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, delay = sink._next(self.path, arrived)
                if delay:
                    time.sleep(delay)
                headers = {k.lower(): v for k, v in self.headers.items()}
                # Recorded before answering, so a client that saw the answer also sees the record.
                sink._record(Received(self.command, self.path, headers, body, arrived, time.time(), status))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up (its deadline passed); the request still counts as received

            do_POST = do_PUT = do_GET = do_DELETE = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-sink", daemon=True)

    def start(self) -> HttpSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> HttpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def program(
        self,
        path: str,
        statuses: Sequence[int] = (),
        *,
        delays: Sequence[float] = (),
        default_status: int = 200,
        default_delay_s: float = 0.0,
    ) -> str:
        """Answer requests to ``path`` with ``statuses`` then ``default_status``; returns the full URL."""
        with self._lock:
            self._programs[path] = _Program(list(statuses), list(delays), default_status, default_delay_s)
        return self.url(path)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` requests (to ``path``) were answered and return them all."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = [r for r in self._received if path is None or r.path == path]
                remaining = deadline - time.monotonic()
                if len(got) >= count or remaining <= 0:
                    return got
                self._lock.wait(remaining)

    def wait_arrived(self, count: int, path: str | None = None, timeout: float = 10.0) -> int:
        """Wait until ``count`` requests (to ``path``) arrived, answered or not; returns how many did."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = sum(1 for p, _ in self._arrivals if path is None or p == path)
                remaining = deadline - time.monotonic()
                if got >= count or remaining <= 0:
                    return got
                self._lock.wait(remaining)

    def _next(self, path: str, arrived: float) -> tuple[int, float]:
        with self._lock:
            self._arrivals.append((path, arrived))
            self._lock.notify_all()
            program = self._programs.get(path)
            return program.next() if program else (200, 0.0)

    def _record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)
            self._lock.notify_all()


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    with HttpSink() as sink:
        yield sink
