"""Validation shared by every adapter, so a name is accepted or refused the same way everywhere.

The rules are contracts §8's path rules (no leading ``/``, no ``..``, no ``%``, no ``\\``, no control
characters) plus GCS's 1024-byte limit. Empty, ``.`` and ``..`` segments are refused too: GCS would accept
them, but the local file store maps segments to directories, and no Servo path needs them.
"""

from __future__ import annotations

import re

from servo.core.errors import InvalidId, InvalidInput

MAX_NAME_BYTES = 1024


# C0 and C1 control characters and DEL; one regex scan, since every store operation checks a name.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _refuse(what: str, value: object, reason: str) -> InvalidId:
    shown = value if not isinstance(value, str) or len(value) <= 200 else value[:200] + "..."
    return InvalidId(f"invalid object {what} {shown!r}: {reason}", details={what: shown})


def validate_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a valid object name, else raise InvalidId."""
    if not isinstance(name, str) or not name:
        raise _refuse(what, name, "must be a non-empty string")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise _refuse(what, name, "must be valid UTF-8 (no lone surrogates)") from None
    if size > MAX_NAME_BYTES:
        raise _refuse(what, name, f"must be at most {MAX_NAME_BYTES} UTF-8 bytes, got {size}")
    if name.startswith("/"):
        raise _refuse(what, name, "must not start with '/'")
    if "\\" in name or "%" in name:
        raise _refuse(what, name, "must not contain '\\' or '%'")
    if _CONTROL.search(name):
        raise _refuse(what, name, "must not contain control characters")
    if any(seg in ("", ".", "..") for seg in name.split("/")):
        raise _refuse(what, name, "must not have empty, '.' or '..' segments (or a trailing '/')")
    return name


def validate_prefix(prefix: object) -> str:
    """Return ``prefix`` if it may be listed: empty, or a valid name optionally ending in ``/``."""
    if prefix == "":
        return ""
    if not isinstance(prefix, str):
        raise _refuse("prefix", prefix, "must be a string")
    validate_name(prefix[:-1] if prefix.endswith("/") and len(prefix) > 1 else prefix, "prefix")
    return prefix


def normalize_offset(offset: object, what: str) -> str | None:
    """Return a list offset, with ``""`` meaning no bound (as in the GCS API)."""
    if offset is None or offset == "":
        return None
    if not isinstance(offset, str):
        raise _refuse(what, offset, "must be a string or None")
    try:
        offset.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(what, offset, "must be valid UTF-8") from None
    return offset


def check_limit(limit: object) -> int | None:
    """Return a list limit: None (unbounded) or an int >= 1."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"invalid list limit {limit!r}: must be an int >= 1 or None")
    return limit


def check_generation(value: object, *, allow_none: bool = True) -> int | None:
    """Return a generation precondition: an int >= 0 (0 = must not exist) or None (unconditional)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"invalid if_generation_match {value!r}: must be an int >= 0 or None")
    return value


def check_data(data: object) -> bytes:
    """Return ``data`` if it is bytes; objects are always raw bytes at the port."""
    if not isinstance(data, bytes):
        raise InvalidInput(f"object data must be bytes, got {type(data).__name__}")
    return data
