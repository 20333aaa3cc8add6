"""Uploading an attempt's output while it runs, so it survives whatever ends the attempt.

Output used to be uploaded once, after the asset returned: an attempt that timed out past its grace,
ignored a cancel or lost its worker left no log at all, and nothing could be read while it ran. Here
the attempt's interleaved stdout/stderr is sent as numbered chunks (``logs`` callback ``{attempt, seq,
text}``, each stored create-if-absent as ``attempt-{n}/{seq}.log``) every ``interval_s`` or sooner
when ``chunk_chars`` are waiting, and whatever is left when the attempt ends. Writes stay few: a
quiet asset costs nothing, a chatty one one object per interval. Nothing polls: the uploader's job
falls due once an interval, and the write that fills a chunk asks for it at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from servo.worker._callbacks import CallbackClient, CallbackUnavailable
from servo.worker._ticker import Repeating, Ticker, shared_ticker

logger = logging.getLogger("servo.worker")

DEFAULT_FLUSH_INTERVAL_S = 5.0
CHUNK_CHARS = 256 * 1024
# What one attempt may store in all; past it only the tail is kept (the end is where a failure is).
MAX_ATTEMPT_CHARS = 2 * 1024 * 1024


class OutputStream:
    """An attempt's output not yet uploaded, in write order, holding at most ``limit`` characters."""

    __slots__ = ("_chunks", "_dropped", "_full", "_limit", "_lock", "_on_full", "_size")

    def __init__(self, limit: int = MAX_ATTEMPT_CHARS) -> None:
        self._chunks: list[str] = []
        self._size = 0
        self._dropped = 0
        self._limit = limit
        self._lock = threading.Lock()
        self._full = 0
        self._on_full: Callable[[], None] | None = None

    def when_full(self, chars: int, call: Callable[[], None]) -> None:
        """Call ``call`` (on the writing thread) each time a write makes ``chars`` or more wait."""
        self._full, self._on_full = chars, call

    def write(self, text: str) -> None:
        with self._lock:
            was = self._size
            self._chunks.append(text)
            self._size += len(text)
            if self._size > 2 * self._limit:
                self._keep(self._limit)
            filled = self._on_full is not None and was < self._full <= self._size
        if filled:
            self._on_full()  # type: ignore[misc]

    def _keep(self, limit: int) -> None:
        joined = "".join(self._chunks)
        self._dropped += max(0, len(joined) - limit)
        kept = joined[-limit:] if limit else ""
        self._chunks, self._size = ([kept] if kept else []), len(kept)

    def peek(self) -> str:
        """All the text waiting, as ``take`` would return it, without taking it."""
        with self._lock:
            text = (
                "".join(self._chunks)[-self._limit :] if self._size > self._limit else "".join(self._chunks)
            )
            dropped = self._dropped + max(0, self._size - self._limit)
        return f"[{dropped} characters of output dropped]\n{text}" if dropped else text

    def pending(self) -> int:
        with self._lock:
            return self._size

    def take(self, max_chars: int, *, whole_lines: bool) -> str:
        """Up to ``max_chars`` of the oldest text; with ``whole_lines``, only up to the last newline."""
        with self._lock:
            if self._size > self._limit:
                self._keep(self._limit)
            joined = "".join(self._chunks)
            cut = min(len(joined), max_chars)
            if whole_lines and cut:
                # A line still being written waits for its end, unless it alone fills a chunk.
                newline = joined.rfind("\n", 0, cut)
                if newline >= 0:
                    cut = newline + 1
                elif cut < max_chars:
                    cut = 0
            taken, rest = joined[:cut], joined[cut:]
            self._chunks, self._size = ([rest] if rest else []), len(rest)
            dropped, self._dropped = self._dropped, 0
        if dropped and taken:
            return f"[{dropped} characters of output dropped]\n{taken}"
        if dropped:
            with self._lock:
                self._dropped += dropped
        return taken

    def keep_tail(self, limit: int) -> None:
        """Drop all but the last ``limit`` characters (counted, and said in the next chunk)."""
        with self._lock:
            if self._size > limit:
                self._keep(limit)

    def put_back(self, text: str) -> None:
        """Return text that could not be uploaded to the front of the stream."""
        with self._lock:
            self._chunks.insert(0, text)
            self._size += len(text)


class LogUploader:
    """Sends an attempt's output as numbered chunks while it runs (timed by the process's ticker),
    then the rest on ``close``."""

    def __init__(
        self,
        client: CallbackClient,
        attempt: int,
        stream: OutputStream,
        *,
        interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        chunk_chars: int = CHUNK_CHARS,
        max_chars: int = MAX_ATTEMPT_CHARS,
        ticker: Ticker | None = None,
    ) -> None:
        self._client = client
        self._attempt = attempt
        self._stream = stream
        self._interval_s = interval_s
        self._chunk_chars = chunk_chars
        self._budget = max_chars
        self._seq = 0
        self._send_lock = threading.Lock()
        self._ticker = ticker
        self._checks: Repeating | None = None

    def start(self) -> None:
        checks = self._checks = (self._ticker or shared_ticker()).every(self._interval_s, self._check)
        self._stream.when_full(self._chunk_chars, checks.hurry)

    def close(self) -> None:
        """Stop the periodic uploads (waiting for one in flight) and upload everything still waiting
        (best effort)."""
        if self._checks is not None:
            self._checks.stop()
        if self._budget <= 0:
            self._stream.keep_tail(self._chunk_chars)
        while self._stream.pending() and self._flush(final=True):
            pass

    def _check(self) -> bool:
        # What is waiting (whole lines), and every further full chunk written meanwhile.
        while self._flush(final=False) and self._stream.pending() >= self._chunk_chars:
            pass
        return True

    def _flush(self, *, final: bool) -> bool:
        """Upload one chunk; False when nothing was sent (nothing ready, or the upload failed)."""
        with self._send_lock:
            if self._budget <= 0 and not final:
                return False  # over the budget: only the tail goes, when the attempt ends
            text = self._stream.take(self._chunk_chars, whole_lines=not final)
            if not text:
                return False
            try:
                reply = self._client.post(
                    "logs", {"attempt": self._attempt, "seq": self._seq, "text": text}, tries=2
                )
            except CallbackUnavailable:
                if not final:
                    self._stream.put_back(text)
                return False
            # A 409 for this seq means an earlier try of this very chunk was stored: move on.
            if not reply.ok and reply.error != "logs_already_uploaded":
                logger.warning("log chunk refused: %s %s", reply.status, dict(reply.body))
                return False
            self._seq += 1
            self._budget -= len(text)
            return True
