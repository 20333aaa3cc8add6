"""A failed asset's traceback as its author wants to read it: their own frames first.

The asset runs under the worker's machinery (the runner's thread, ``call_asset``, ``asyncio.run`` for a
coroutine); those frames say nothing about the failure and push the user's code below the fold, so
the leading ones are dropped. Frames of Servo *called by* the user (``ctx.add_metadata`` raising) stay,
in place, as does every chained exception.
"""

from __future__ import annotations

import asyncio
import os
import traceback
from pathlib import Path
from types import TracebackType

import servo

# Directories whose frames at the top of a traceback are the worker's, not the user's.
_MACHINERY = tuple(
    str(Path(module.__file__).resolve().parent) + os.sep for module in (servo, asyncio) if module.__file__
)


def _is_machinery(tb: TracebackType) -> bool:
    filename = tb.tb_frame.f_code.co_filename
    try:
        resolved = str(Path(filename).resolve())
    except OSError:
        return False
    return resolved.startswith(_MACHINERY)


def user_traceback(exc: BaseException) -> str:
    """``exc`` formatted as Python does, minus the worker's leading frames (all kept if no frame is
    the user's)."""
    tb = exc.__traceback__
    while tb is not None and _is_machinery(tb):
        tb = tb.tb_next
    shown = tb if tb is not None else exc.__traceback__
    return "".join(traceback.format_exception(type(exc), exc, shown))
