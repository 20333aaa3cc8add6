"""What the ``@asset``, ``@schedule`` and sensor decorators share: where a definition was written, finding the
definition a decorated function carries, and turning a core validation error into a definition error that
points at the user's source line."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from servo.core.errors import ServoError

D = TypeVar("D")
E = TypeVar("E", bound=ServoError)


@dataclass(frozen=True, slots=True)
class CodeLocation:
    module: str
    function: str
    file_path: str
    line_number: int

    def __str__(self) -> str:
        return f"{self.file_path}:{self.line_number}"

    @property
    def details(self) -> dict[str, Any]:
        return {"file": self.file_path, "line": self.line_number}


def code_location(fn: Callable[..., Any]) -> CodeLocation:
    """Where ``fn`` is defined, so errors name the line the user wrote."""
    code = fn.__code__
    return CodeLocation(
        fn.__module__, fn.__name__, inspect.getsourcefile(fn) or code.co_filename, code.co_firstlineno
    )


def attached(obj: object, kind: type[D], attr: str, what: str) -> D:
    """``obj`` if it is a ``kind``, else the ``kind`` its decorator attached under ``attr``."""
    if isinstance(obj, kind):
        return obj
    found = getattr(obj, attr, None)
    if not isinstance(found, kind):
        raise TypeError(f"{obj!r} is not {what}")
    return found


def definition_error(error: type[E], exc: ServoError, noun: str, ident: str, code: CodeLocation | None) -> E:
    """``exc`` re-raised as ``error``, prefixed with the definition's source line and named by ``noun``."""
    where = f"{code}: " if code else ""
    details = {**exc.details, noun: ident}
    if code:
        details |= code.details
    return error(f"{where}{noun} {ident!r}: {exc.message}", details=details)
