"""The attempt's output stream: whole lines while running, everything at the end, the tail when too much."""

from __future__ import annotations

import json
import threading
from typing import Any

from servo.dispatch import ReusedThreads
from servo.dispatch._transport import Reply
from servo.worker._callbacks import CallbackClient
from servo.worker._logstream import LogUploader, OutputStream
from servo.worker._ticker import Repeating, Ticker


def test_a_running_attempt_sends_whole_lines_and_the_rest_at_the_end() -> None:
    stream = OutputStream()
    stream.write("one\ntw")
    assert stream.take(100, whole_lines=True) == "one\n"
    assert stream.take(100, whole_lines=True) == ""  # "tw" is a line still being written
    stream.write("o")
    assert stream.take(100, whole_lines=False) == "two"
    assert stream.pending() == 0


def test_a_line_longer_than_a_chunk_is_sent_in_pieces() -> None:
    stream = OutputStream()
    stream.write("x" * 10)
    assert stream.take(4, whole_lines=True) == "xxxx"
    assert stream.pending() == 6


def test_too_much_output_keeps_the_tail_and_says_what_was_dropped() -> None:
    stream = OutputStream(limit=10)
    stream.write("a" * 15)
    stream.write("b" * 10)
    assert stream.take(100, whole_lines=False) == "[15 characters of output dropped]\n" + "b" * 10
    stream.write("abc")
    stream.keep_tail(1)
    assert stream.take(100, whole_lines=False) == "[2 characters of output dropped]\nc"


class _Plane:
    """The control plane's end of the ``logs`` callback, as a Transport."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.sent = threading.Semaphore(0)

    def deliver(self, method: str, url: str, headers: Any, body: bytes, *, timeout_s: float) -> Reply:
        self.chunks.append(json.loads(body)["text"])
        self.sent.release()
        return Reply(201, b"{}")


class _Recording(Ticker):
    def __init__(self) -> None:
        super().__init__(ReusedThreads("test-logs"))
        self.intervals: list[float] = []

    def every(self, interval_s: float, job: Any, *, first_s: float | None = None) -> Repeating:
        self.intervals.append(interval_s)
        return super().every(interval_s, job, first_s=first_s)


def test_output_is_checked_once_a_flush_interval_and_a_full_chunk_goes_at_once() -> None:
    # A check every 0.2 s woke the worker's ticker and one of its threads five times a second per
    # attempt in flight; a full chunk asks for its upload instead.
    plane, ticker, stream = _Plane(), _Recording(), OutputStream()
    client = CallbackClient(plane, "http://plane", "ct1_x", "token")
    uploader = LogUploader(client, 1, stream, interval_s=3600, chunk_chars=10, ticker=ticker)
    uploader.start()
    assert ticker.intervals == [3600]
    stream.write("12345\n")
    assert not plane.chunks
    stream.write("67890\n")
    assert plane.sent.acquire(timeout=10)
    assert plane.chunks == ["12345\n"]
    uploader.close()
    assert plane.chunks == ["12345\n", "67890\n"]
