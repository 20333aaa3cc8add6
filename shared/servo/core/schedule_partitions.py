"""The partition a schedule tick runs (automation §3 ``partition``, §6.1, S10, S16).

A rule is ``"previous"`` or ``"current"`` (the UTC window before or containing the tick, for targets with
one time dimension) or a mapping per dimension: a time dimension takes those words or a literal, a static
dimension a literal. Dimensions are the deployed manifest form ``{name, kind, granularity?, start?,
values?}``; values come out in the canonical key form of ``servo.core.partition_keys``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from servo.core._key_text import IDENT_RE
from servo.core.errors import InvalidInput, InvalidSchedule
from servo.core.partition_keys import PartitionKey, PartitionValue
from servo.core.timefmt import parse_timestamp_us

__all__ = [
    "RELATIVE_WINDOWS",
    "PartitionRule",
    "check_partition_rule",
    "normalize_partition_rule",
    "tick_partition_key",
]

RELATIVE_WINDOWS = ("previous", "current")
PartitionRule = str | Mapping[str, str]
_YEAR_RE = re.compile(r"[0-9]{4}")
_MONTH_RE = re.compile(r"[0-9]{4}-[0-9]{2}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _rule_error(message: str) -> InvalidSchedule:
    return InvalidSchedule(f"partition: {message}", details={"field": "partition"})


def normalize_partition_rule(rule: object) -> PartitionRule | None:
    """Check a rule's shape alone (no dimensions known yet); mappings come back byte-sorted.

    Raises:
        InvalidSchedule: neither ``None``, ``"previous"``/``"current"`` nor a non-empty mapping of
            dimension names to non-empty strings.
    """
    if rule is None:
        return None
    if isinstance(rule, str):
        if rule not in RELATIVE_WINDOWS:
            raise _rule_error(
                f"{rule!r} must be 'previous' or 'current', or a mapping per dimension like "
                "{'date': 'previous', 'region': 'eu'}"
            )
        return rule
    if not isinstance(rule, Mapping) or not rule:
        raise _rule_error(f"{rule!r} must be 'previous', 'current' or a non-empty mapping per dimension")
    for name, value in rule.items():
        if not isinstance(name, str) or not IDENT_RE.fullmatch(name):
            raise _rule_error(f"dimension name {name!r} must match [a-z][a-z0-9_]*")
        if not isinstance(value, str) or not value:
            raise _rule_error(f"dimension {name!r} takes a non-empty string, not {value!r}")
    return {name: rule[name] for name in sorted(rule, key=lambda k: k.encode("utf-8"))}


def _time_dimensions(dimensions: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [d for d in dimensions if d.get("kind") == "time"]


def _per_dimension(rule: PartitionRule | None, dimensions: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    names = sorted(str(d.get("name")) for d in dimensions)
    if not dimensions:
        if rule is not None:
            raise _rule_error("the targets are not partitioned; drop the partition rule")
        return {}
    if rule is None:
        raise _rule_error(f"the targets are partitioned by {', '.join(names)}; give a partition rule")
    if isinstance(rule, str):
        if len(dimensions) != 1 or len(_time_dimensions(dimensions)) != 1:
            raise _rule_error(
                f"{rule!r} needs targets with exactly one time dimension; these have {', '.join(names)}: "
                "give a mapping per dimension"
            )
        return {str(dimensions[0]["name"]): rule}
    if sorted(rule) != names:
        raise _rule_error(f"names dimensions {', '.join(sorted(rule))}; the targets have {', '.join(names)}")
    return dict(rule)


def check_partition_rule(rule: PartitionRule | None, dimensions: Sequence[Mapping[str, Any]]) -> None:
    """Check a rule against the targets' shared dimensions (at deploy): names, literals, window words.

    Raises:
        InvalidSchedule: a rule for unpartitioned targets or none for partitioned ones, a word on a
            static dimension, or a literal the dimension does not hold.
    """
    values = _per_dimension(rule, dimensions)
    for dim in dimensions:
        _dimension_value(dim, values[str(dim["name"])], None)


def tick_partition_key(
    rule: PartitionRule | None, dimensions: Sequence[Mapping[str, Any]], tick_s: int
) -> str | None:
    """The canonical partition key a tick at ``tick_s`` (epoch seconds) runs; ``None`` if unpartitioned.

    Raises:
        InvalidSchedule: the rule does not fit the dimensions, or the tick's window has no partition
            (before the dimension's start): the tick is FAILED with this message as its reason.
    """
    values = _per_dimension(rule, dimensions)
    if not dimensions:
        return None
    built: dict[str, PartitionValue] = {}
    for dim in dimensions:
        value = _dimension_value(dim, values[str(dim["name"])], tick_s)
        assert value is not None  # a tick time resolves every window word
        built[str(dim["name"])] = value
    return PartitionKey.of(built).render()


def _dimension_value(dim: Mapping[str, Any], text: str, tick_s: int | None) -> PartitionValue | None:
    """The dimension's value for ``text``; ``None`` for a window word when no tick is given (deploy)."""
    name = str(dim["name"])
    try:
        if dim.get("kind") == "static":
            if text in RELATIVE_WINDOWS or text not in (dim.get("values") or ()):
                raise _rule_error(f"dimension {name!r} is static: {text!r} is not one of {dim.get('values')}")
            return PartitionValue("s", text)
        granularity = str(dim.get("granularity", "day"))
        if text in RELATIVE_WINDOWS:
            if tick_s is None:
                return None
            value = window_value(granularity, tick_s, previous=text == "previous")
            what = f"the {text} {granularity} window of the tick"
        else:
            value = literal_value(granularity, text)
            what = repr(text)
        start = dim.get("start")
        if start is not None and str(value.value) < str(start):
            raise _rule_error(
                f"dimension {name!r}: {what} is {value.value}, before the first partition {start}"
            )
        return value
    except InvalidSchedule:
        raise
    except InvalidInput as exc:  # partition values and timestamps say what is wrong; name the dimension
        raise _rule_error(f"dimension {name!r}: {exc.message}") from None


def window_value(granularity: str, tick_s: int, *, previous: bool) -> PartitionValue:
    moment = datetime.fromtimestamp(tick_s, UTC)
    if granularity == "hour":
        start = moment.replace(minute=0, second=0, microsecond=0) - timedelta(hours=int(previous))
        return PartitionValue("t", start.strftime("%Y-%m-%dT%H:00:00.000000Z"))
    day = moment.date()
    if granularity == "day":
        day -= timedelta(days=int(previous))
    elif granularity == "month":
        day = day.replace(day=1)
        if previous:
            day = (day - timedelta(days=1)).replace(day=1)
    elif granularity == "year":
        day = day.replace(month=1, day=1, year=day.year - int(previous))
    else:
        raise _rule_error(f"unknown time granularity {granularity!r}")
    return PartitionValue("d", day.isoformat())


def literal_value(granularity: str, text: str) -> PartitionValue:
    if granularity == "hour":
        micros = parse_timestamp_us(text)
        if micros % 3_600_000_000:
            raise _rule_error(f"{text!r} is not on the hour")
        return window_value("hour", micros // 1_000_000, previous=False)
    if granularity == "year" and _YEAR_RE.fullmatch(text):
        text += "-01-01"
    elif granularity == "month" and _MONTH_RE.fullmatch(text):
        text += "-01"
    if not _DATE_RE.fullmatch(text):
        raise _rule_error(f"{text!r} is not a date (YYYY-MM-DD) for a {granularity} dimension")
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise _rule_error(f"{text!r} is not a real date") from None
    value = window_value(granularity, int(day.timestamp()), previous=False)
    if value.value != text:
        raise _rule_error(f"{text!r} is not the start of a {granularity}")
    return value
