"""The process-wide ServiceContext of a deployed function, built on first use (not at import)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from servo import jsonlog
from servo.services.context import ServiceContext
from servo.settings import Settings

_lock = threading.Lock()
_context: ServiceContext | None = None


def function_context() -> ServiceContext:
    """Settings from the environment, the bucket store and (lazily) the Cloud Tasks client."""
    global _context
    if _context is None:
        with _lock:
            if _context is None:
                settings = Settings.from_env()
                jsonlog.configure(settings.project)
                queue = settings.task_queue() if settings.storage == "gcs" else None
                _context = ServiceContext(settings=settings, store=settings.object_store(), queue=queue)
    return _context


@contextlib.contextmanager
def override_context(ctx: ServiceContext) -> Iterator[ServiceContext]:
    """Serve requests with ``ctx`` (handler tests drive the real entry points with a test context)."""
    global _context
    previous = _context
    _context = ctx
    try:
        yield ctx
    finally:
        _context = previous
