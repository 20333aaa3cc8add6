"""Per-task capture of stdout, stderr and log records.

The reference worker swapped ``sys.stdout`` for a buffer, which is process-global: two tasks running on
two threads would steal each other's output. Here ``sys.stdout``/``sys.stderr`` are replaced (once) by
proxies that look up the *current context's* capture in a ContextVar and fall through to the real stream
when there is none. Each task runs in its own context, so concurrent tasks each collect only their own
text; ``asyncio.run`` copies the context into its tasks, so async assets are captured too.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

# Enough for any log the control plane keeps (it truncates to 2 MiB); the tail is what matters.
MAX_CAPTURE_CHARS = 4 * 1024 * 1024


class _TailBuffer:
    """Text buffer that keeps at most ``limit`` characters, dropping the oldest."""

    __slots__ = ("_chunks", "_dropped", "_limit", "_lock", "_size")

    def __init__(self, limit: int) -> None:
        self._chunks: list[str] = []
        self._size = 0
        self._limit = limit
        self._dropped = False
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            self._chunks.append(text)
            self._size += len(text)
            if self._size > 2 * self._limit:
                joined = "".join(self._chunks)[-self._limit :]
                self._chunks, self._size, self._dropped = [joined], len(joined), True

    def getvalue(self) -> str:
        with self._lock:
            text = "".join(self._chunks)
            if self._size > self._limit:
                text, self._dropped = text[-self._limit :], True
            return f"[earlier output dropped]\n{text}" if self._dropped else text


class CapturedOutput:
    """What one task printed and logged."""

    __slots__ = ("_err", "_out")

    def __init__(self, limit: int = MAX_CAPTURE_CHARS) -> None:
        self._out = _TailBuffer(limit)
        self._err = _TailBuffer(limit)

    def stdout(self) -> str:
        return self._out.getvalue()

    def stderr(self) -> str:
        return self._err.getvalue()

    def _write(self, stream: str, text: str) -> None:
        (self._out if stream == "stdout" else self._err).write(text)


_current: ContextVar[CapturedOutput | None] = ContextVar("servo_worker_capture", default=None)
_install_lock = threading.Lock()
_handled_loggers: set[str] = set()


class _StreamProxy(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: the current task's buffer, else the real stream."""

    def __init__(self, name: str, real: TextIO) -> None:
        super().__init__()
        self._name = name
        self._real = real

    def write(self, text: str) -> int:
        captured = _current.get()
        if captured is None:
            return self._real.write(text)
        captured._write(self._name, text)
        return len(text)

    def flush(self) -> None:
        if _current.get() is None:
            self._real.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return _current.get() is None and self._real.isatty()

    def fileno(self) -> int:
        return self._real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._real, "encoding", "utf-8") or "utf-8"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _CaptureHandler(logging.Handler):
    """Sends a record to the current task's stderr buffer; records outside a task are left alone."""

    def emit(self, record: logging.LogRecord) -> None:
        captured = _current.get()
        if captured is None:
            return
        try:
            captured._write("stderr", self.format(record) + "\n")
        except Exception:  # a logging handler must never raise into user code
            self.handleError(record)


def _install(loggers: Iterable[str]) -> None:
    with _install_lock:
        # Someone (a test runner, a user) may have swapped the streams since: wrap whatever is there now.
        if not isinstance(sys.stdout, _StreamProxy):
            sys.stdout = _StreamProxy("stdout", sys.stdout)
        if not isinstance(sys.stderr, _StreamProxy):
            sys.stderr = _StreamProxy("stderr", sys.stderr)
        for name in loggers:
            if name not in _handled_loggers:
                handler = _CaptureHandler()
                handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
                logging.getLogger(name).addHandler(handler)
                _handled_loggers.add(name)


@contextmanager
def capture_output(loggers: Iterable[str] = ()) -> Iterator[CapturedOutput]:
    """Capture what the current context prints (and logs to ``loggers``) for the duration of the block.

    Threads started inside the block do not inherit the capture unless they run in a copy of this
    context (``contextvars.copy_context().run``), which is how the runner starts the asset thread.
    """
    _install(loggers)
    captured = CapturedOutput()
    token = _current.set(captured)
    try:
        yield captured
    finally:
        _current.reset(token)
