"""RFC 3339 UTC timestamps as the wire writes them (contracts, conventions).

Writers size the fraction like chrono's serde: none when the sub-second part is zero, else the fewest of
3 or 6 digits that loses nothing. Readers accept 0-9 fraction digits but insist on ``Z``: a stored time
with an offset would be a second spelling of the same instant.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from servo.core.errors import InvalidInput

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_RFC3339_UTC = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z"
)


def _check_epoch(value: int, what: str, limit: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{what} must be an int, got {type(value).__name__}")
    if not 0 <= value <= limit:
        raise InvalidInput(f"{what} {value} is outside 1970-01-01 .. 9999-12-31")


_last_second: tuple[int, str] = (-1, "")


def format_timestamp_us(us: int) -> str:
    """Format epoch microseconds as ``YYYY-MM-DDTHH:MM:SSZ`` with 0, 3 or 6 fraction digits (fewest lossless).

    Raises:
        InvalidInput: not an int, or outside 1970..9999.
    """
    global _last_second
    _check_epoch(us, "epoch microseconds", MAX_MS * 1000 + 999)
    seconds, micros = divmod(us, 1_000_000)
    last = _last_second
    if last[0] == seconds:
        base = last[1]
    else:
        # Every event and answer is stamped, mostly within the same second: the last one is kept.
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, base)
    if micros == 0:
        return base + "Z"
    if micros % 1000 == 0:
        return f"{base}.{micros // 1000:03d}Z"
    return f"{base}.{micros:06d}Z"


def format_timestamp(ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 UTC with no fraction when ``ms % 1000 == 0``, else 3 digits.

    Raises:
        InvalidInput: not an int, or outside 1970..9999.
    """
    _check_epoch(ms, "epoch milliseconds", MAX_MS)
    return format_timestamp_us(ms * 1000)


def parse_timestamp_us(s: str) -> int:
    """Parse an RFC 3339 UTC timestamp ending in ``Z`` (0-9 fraction digits) to epoch microseconds.

    Digits beyond microseconds are truncated.

    Raises:
        InvalidInput: not that form, not ``Z``, or not a real calendar instant.
    """
    if not isinstance(s, str):
        raise InvalidInput(f"timestamp must be a string, got {type(s).__name__}")
    match = _RFC3339_UTC.fullmatch(s)
    if not match:
        raise InvalidInput(f"invalid timestamp {s!r}: expected RFC 3339 UTC like 2025-01-15T10:00:05.123Z")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        instant = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput(f"invalid timestamp {s!r}: {exc}") from exc
    fraction = (match.group(7) or "").ljust(6, "0")[:6]
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + int(fraction)


def parse_timestamp(s: str) -> int:
    """Parse an RFC 3339 UTC timestamp ending in ``Z`` to epoch milliseconds (sub-ms digits truncated).

    Raises:
        InvalidInput: see :func:`parse_timestamp_us`.
    """
    return parse_timestamp_us(s) // 1000
