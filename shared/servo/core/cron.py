"""Cron expressions of schedules (automation §3, §6.1) and the UTC instants they fire at.

cronsim parses the five fields and walks wall-clock matches on naive datetimes. Turning a wall-clock match
into UTC instants is done here because the spec's DST rules are not any library's: cronsim, like Debian
cron, decides by the minute *and* hour fields and moves a skipped time to the first valid minute of the
same schedule, while §6.1 decides by the hour field alone:

- a local time that exists once fires once;
- a nonexistent local time (spring-forward gap) fires at the first valid instant after the gap;
- an ambiguous local time (fall-back) fires at its first occurrence, except when the hour field is ``*``:
  then it fires at both, so an hourly schedule runs in both 01:00 hours;
- one UTC instant is one fire, however many local times land on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from servo.core.errors import InvalidSchedule

__all__ = ["CRON_FIELDS", "CRON_MACROS", "CronExpression", "load_timezone", "parse_cron"]

CRON_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}
CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_ALLOWED = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 (0 and 7 are Sunday) or SUN-SAT",
}
_NAMES = {
    "month": frozenset(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]),
    "day-of-week": frozenset(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]),
}
# One list item: `*`, a value or a range, optionally stepped. Values are numbers or three-letter names;
# cronsim's extensions (L, W, #, seconds) are outside the spec and rejected here.
_ITEM_RE = re.compile(r"(?:\*|(?P<a>[0-9]+|[A-Za-z]{3})(?:-(?P<b>[0-9]+|[A-Za-z]{3}))?)(?:/[0-9]+)?")
_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)
# Offsets are sampled on this grid to bound the wall-clock range of a UTC window; every tzdb offset
# lasts far longer than this, so no transition pair hides between two samples.
_OFFSET_SAMPLE_S = 1800
# Windows are walked in chunks so the sampling stays proportional to what is asked.
_CHUNK_S = 8 * 86_400
# Every zone's offset lies within UTC-12..UTC+14.
_MAX_OFFSET_S = 15 * 3600


def _cron_error(expression: object, message: str, cron_field: str | None = None) -> InvalidSchedule:
    details: dict[str, object] = {"field": "cron", "cron": expression}
    if cron_field:
        details["cronField"] = cron_field
    return InvalidSchedule(f"cron {expression!r}: {message}", details=details)


def _check_field(expression: str, name: str, text: str) -> None:
    for item in text.split(","):
        match = _ITEM_RE.fullmatch(item)
        names = [v for v in (match.group("a"), match.group("b")) if v and v.isalpha()] if match else []
        if not match or any(v.upper() not in _NAMES.get(name, ()) for v in names):
            raise _cron_error(
                expression,
                f"bad {name} field {text!r} (allowed: {_ALLOWED[name]}, lists, ranges, steps)",
                name,
            )


def _probe(fields: list[str]) -> None:
    CronSim(" ".join(fields), datetime(2000, 1, 1))


@lru_cache(maxsize=256)
def _matches_every_hour(hour_field: str) -> bool:
    return CronSim(f"0 {hour_field} * * *", datetime(2000, 1, 1)).hours == set(range(24))


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A validated cron expression: ``expression`` is its canonical spelling (single spaces, lower-case
    macro), ``fields`` the five fields after macro expansion."""

    expression: str
    fields: tuple[str, str, str, str, str]

    @property
    def every_hour(self) -> bool:
        """The hour field is ``*`` in effect (``*``, ``*/1``, ``0-23``): such crons fire at every matching
        UTC instant, both copies of a repeated hour included."""
        return _matches_every_hour(self.fields[1])

    def fire_times(self, zone: tzinfo, after_s: int, until_s: int, limit: int) -> list[int]:
        """The instants (epoch seconds) in ``(after_s, until_s]`` this fires at in ``zone``, oldest first.

        At most ``limit``; the walk stops as soon as no later wall-clock match can come earlier.
        """
        found: list[int] = []
        lo = after_s
        while lo < until_s and len(found) < limit:
            hi = min(until_s, lo + _CHUNK_S)
            found += self._fire_times_within(zone, lo, hi, limit - len(found))
            lo = hi
        return found

    def next_fire_after(self, zone: tzinfo, after_s: int) -> int | None:
        """The first instant after ``after_s``; ``None`` only past cronsim's 50-year lookahead."""
        lo = after_s
        while True:
            # Jump to the next wall-clock match: its instant is within a day of its wall time.
            try:
                wall = next(self._wall_matches(_naive(lo - _MAX_OFFSET_S)))
            except StopIteration:
                return None
            lo = max(lo, _naive_s(wall) - _MAX_OFFSET_S)
            first = self.fire_times(zone, lo, lo + 2 * _MAX_OFFSET_S, 1)
            if first:
                return first[0]
            lo += 2 * _MAX_OFFSET_S

    def _fire_times_within(self, zone: tzinfo, lo: int, hi: int, limit: int) -> list[int]:
        samples = [*range(lo, hi, _OFFSET_SAMPLE_S), hi]
        offsets = [_offset_s(zone, s) for s in samples]
        off_min, off_max = min(offsets), max(offsets)
        # A fire t in (lo, hi] comes from a wall-clock time in (lo + off_min, hi + off_max]: its own local
        # time, or a time inside a gap that starts after lo. Each wall time maps to instants >= it - off_max.
        found: set[int] = set()
        for wall in self._wall_matches(_naive(lo + off_min)):
            floor = _naive_s(wall) - off_max
            if floor > hi or (len(found) >= limit and floor > sorted(found)[limit - 1]):
                break
            found.update(t for t in self._instants(zone, wall) if lo < t <= hi)
        return sorted(found)[:limit]

    def _wall_matches(self, start: datetime) -> Iterator[datetime]:
        # CronSim yields matches strictly after start; a valid expression never runs dry within the
        # lookahead, and a wall range never needs more.
        yield from CronSim(" ".join(self.fields), start)

    def _instants(self, zone: tzinfo, wall: datetime) -> list[int]:
        first = _aware_s(wall.replace(tzinfo=zone, fold=0))
        second = _aware_s(wall.replace(tzinfo=zone, fold=1))
        if first == second:
            return [first]
        if first < second:  # ambiguous: fold=0 is the earlier occurrence
            return [first, second] if self.every_hour else [first]
        # Nonexistent: fold=0 reads it with the offset before the gap (an instant after the transition),
        # fold=1 with the offset after (an instant before it). The transition is the first valid time.
        return [_transition(zone, second, first)]


def _naive(epoch_s: int) -> datetime:
    return _EPOCH + timedelta(seconds=epoch_s)


def _naive_s(wall: datetime) -> int:
    return (wall - _EPOCH) // _SECOND


def _aware_s(moment: datetime) -> int:
    return _naive_s(moment.replace(tzinfo=None) - (moment.utcoffset() or timedelta(0)))


def _offset_s(zone: tzinfo, epoch_s: int) -> int:
    return (datetime.fromtimestamp(epoch_s, zone).utcoffset() or timedelta(0)) // _SECOND


def _transition(zone: tzinfo, before_s: int, after_s: int) -> int:
    """The first instant in ``(before_s, after_s]`` whose offset is the one at ``after_s``."""
    target = _offset_s(zone, after_s)
    lo, hi = before_s, after_s
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_s(zone, mid) == target:
            hi = mid
        else:
            lo = mid
    return hi


def parse_cron(expression: object) -> CronExpression:
    """Validate a five-field cron or one of ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``.

    Raises:
        InvalidSchedule: not a string, not five fields (six-field seconds crons included), a bad field
            (``details["cronField"]`` names it), or a cron that can never fire.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise _cron_error(expression, "must be a non-empty string")
    text = canonical = expression.strip()
    if text.startswith("@"):
        canonical = text.lower()
        if canonical not in CRON_MACROS:
            raise _cron_error(expression, f"unknown macro; use one of {', '.join(CRON_MACROS)}")
        text = CRON_MACROS[canonical]
    fields = text.split()
    if len(fields) != 5:
        raise _cron_error(
            expression,
            f"has {len(fields)} fields; expected 5 ({' '.join(CRON_FIELDS)}) "
            f"or one of {', '.join(CRON_MACROS)}",
        )
    for name, field in zip(CRON_FIELDS, fields, strict=True):
        _check_field(expression, name, field)
        try:
            _probe([field if i == CRON_FIELDS.index(name) else "*" for i in range(5)])
        except CronSimError:
            raise _cron_error(
                expression, f"bad {name} field {field!r} (allowed: {_ALLOWED[name]})", name
            ) from None
    try:
        next(CronSim(" ".join(fields), datetime(2000, 1, 1)))
    except (CronSimError, StopIteration):
        # Every field is valid alone, so only the day-of-month and month fields can exclude each other.
        raise _cron_error(
            expression,
            f"day-of-month {fields[2]!r} never occurs in month {fields[3]!r}: the schedule would never fire",
            "day-of-month",
        ) from None
    if not canonical.startswith("@"):
        canonical = " ".join(fields)  # spacing is not meaning: one spelling, one definition hash
    return CronExpression(canonical, (fields[0], fields[1], fields[2], fields[3], fields[4]))


def load_timezone(name: object) -> ZoneInfo:
    """An IANA zone by name (``UTC``, ``America/New_York``).

    Raises:
        InvalidSchedule: not a string or not an IANA zone this runtime knows (``details["field"]`` is
            ``timezone``).
    """
    if not isinstance(name, str) or not name:
        raise InvalidSchedule(
            f"timezone {name!r} must be an IANA zone name like 'Europe/London'",
            details={"field": "timezone", "timezone": name},
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidSchedule(
            f"timezone {name!r} is not an IANA time zone (e.g. 'UTC', 'America/New_York')",
            details={"field": "timezone", "timezone": name},
        ) from None
