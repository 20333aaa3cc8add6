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

from servo.worker._logstream import OutputStream


class CapturedOutput:
    """What one task printed and logged, stdout and stderr interleaved in write order: ``stream``,
    which the uploader drains while the task runs (worker._logstream)."""

    __slots__ = ("stream",)

    def __init__(self) -> None:
        self.stream = OutputStream()

    def text(self) -> str:
        """Everything captured and not yet taken by the uploader (without taking it)."""
        return self.stream.peek()

    def write_stderr(self, text: str) -> None:
        """Add the worker's own text (a failure's traceback) to the attempt's output."""
        self._write("stderr", text if text.endswith("\n") else text + "\n")

    def _write(self, stream: str, text: str) -> None:
        # ``stream`` (stdout or stderr) is not kept apart: a log reads as the terminal would show it.
        self.stream.write(text)


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
