"""Partition dimensions of an asset and the canonical keys built from user values (contracts §3).

A dimension knows its manifest kind, so a value typed by a user (``-p date=2025-01-15``) is tagged by
what the dimension *is* (``d:2025-01-15``), never blindly as a string (the reference CLI's ``s:`` surprise,
user-surface §1.3).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any, Literal, get_args

from servo.core.errors import InvalidPartitionKey, ServoError
from servo.core.partition_keys import PartitionKey, PartitionValue, parse_partition_key

Granularity = Literal["year", "month", "day", "hour"]
GRANULARITIES: tuple[str, ...] = get_args(Granularity)
_IDENT_RE = re.compile(r"[a-z][a-z0-9_]*")
_YEAR_RE = re.compile(r"[0-9]{4}")
_MONTH_RE = re.compile(r"[0-9]{4}-[0-9]{2}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Hours may be typed loosely (2025-01-15T10, 2025-01-15 10:00, ...Z, +00:00); they must land on the hour.
_HOUR_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}(:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?(Z|[+-][0-9]{2}:[0-9]{2})?"
)


# What a stored value's type is called in a message (the wire tags are not the user's words).
_VALUE_KINDS = {"s": "text", "i": "a number", "b": "a boolean", "d": "a date", "t": "a time", "n": "null"}


def _error(dimension: str, message: str) -> InvalidPartitionKey:
    return InvalidPartitionKey(
        f"partition dimension {dimension!r}: {message}", details={"dimension": dimension}
    )


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _IDENT_RE.fullmatch(name):
        raise InvalidPartitionKey(
            f"partition dimension name {name!r} must match [a-z][a-z0-9_]*", details={"dimension": name}
        )
    return name


@dataclass(frozen=True, slots=True)
class TimePartitions:
    """Time partitions of a fixed granularity; values are the period start (``d:`` or, hourly, ``t:``).

    Args:
        name: the dimension name, ``[a-z][a-z0-9_]*``.
        granularity: ``year``, ``month``, ``day`` or ``hour``.
        start: the first partition (inclusive); earlier values are rejected.
    """

    name: str
    granularity: Granularity
    start: str | date | None = None
    _start: PartitionValue | None = field(init=False, repr=False, compare=False, default=None)

    kind = "time"

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.granularity not in GRANULARITIES:
            raise _error(
                self.name, f"granularity {self.granularity!r} must be one of {', '.join(GRANULARITIES)}"
            )
        if self.start is not None:
            object.__setattr__(self, "_start", self._parse(self.start))

    @property
    def tag(self) -> Literal["d", "t"]:
        return "t" if self.granularity == "hour" else "d"

    def _parse(self, value: str | date) -> PartitionValue:
        if isinstance(value, date):  # datetime too: daily dimensions then reject the time part
            value = value.isoformat()
        if not isinstance(value, str):
            raise _error(self.name, f"value {value!r} must be a string, date or datetime")
        text = value.strip()
        if self.granularity == "hour":
            return PartitionValue("t", self._hour(text))
        if self.granularity == "year" and _YEAR_RE.fullmatch(text):
            text += "-01-01"
        elif self.granularity == "month" and _MONTH_RE.fullmatch(text):
            text += "-01"
        if not _DATE_RE.fullmatch(text):
            raise _error(self.name, f"{value!r} is not a date ({self._shape()})")
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise _error(self.name, f"{value!r} is not a valid date: {exc}") from None
        return self._aligned_date(day, value)

    def _aligned_date(self, day: date, raw: object) -> PartitionValue:
        if (self.granularity == "month" and day.day != 1) or (
            self.granularity == "year" and (day.month, day.day) != (1, 1)
        ):
            raise _error(self.name, f"{raw!r} is not the start of a {self.granularity} ({self._shape()})")
        try:
            return PartitionValue("d", day.isoformat())
        except ServoError as exc:  # e.g. a year before 1970
            raise _error(self.name, f"{raw!r}: {exc}") from None

    def _hour(self, text: str) -> str:
        if not _HOUR_RE.fullmatch(text):
            raise _error(self.name, f"{text!r} is not an hour ({self._shape()})")
        try:
            moment = datetime.fromisoformat(text if len(text) > 13 else text + ":00")
        except ValueError as exc:
            raise _error(self.name, f"{text!r} is not a valid time: {exc}") from None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        if (moment.minute, moment.second, moment.microsecond) != (0, 0, 0):
            raise _error(self.name, f"{text!r} is not on the hour ({self._shape()})")
        if moment.year < 1970:
            raise _error(self.name, f"{text!r}: year must be >= 1970")
        return moment.strftime("%Y-%m-%dT%H:00:00.000000Z")

    def _shape(self) -> str:
        return {
            "year": "expected YYYY",
            "month": "expected YYYY-MM",
            "day": "expected YYYY-MM-DD",
            "hour": "expected YYYY-MM-DDTHH[:00[:00]][Z], UTC",
        }[self.granularity]

    def value_of(self, value: str | date) -> PartitionValue:
        """The canonical tagged value for a user value (``2025-01-15`` -> ``d:2025-01-15``).

        Raises:
            InvalidPartitionKey: malformed, not aligned to the granularity, or before ``start``.
        """
        parsed = self._parse(value)
        self._check_start(parsed)
        return parsed

    def check(self, value: PartitionValue) -> None:
        """Raise InvalidPartitionKey unless ``value`` (from a parsed key) belongs to this dimension."""
        if value.tag != self.tag:
            given = _VALUE_KINDS.get(value.tag, value.tag)
            raise _error(self.name, f"{value.display()!r} was given as {given}, not as a {self.granularity}")
        assert isinstance(value.value, str)
        # Re-deriving the canonical value checks alignment and the real calendar (the key grammar
        # alone accepts 2025-02-29, which no daily partition can hold).
        if self._parse(value.value) != value:
            raise _error(self.name, f"{value.value!r} is not on the {self.granularity} boundary")
        self._check_start(value)

    def _check_start(self, value: PartitionValue) -> None:
        if self._start is not None and str(value.value) < str(self._start.value):
            raise _error(self.name, f"{value.value} is before the first partition {self._start.value}")

    def python_value(self, value: PartitionValue) -> date | datetime:
        assert isinstance(value.value, str)
        if value.tag == "t":
            return datetime.strptime(value.value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        return date.fromisoformat(value.value)

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": "time", "granularity": self.granularity}
        if self._start is not None:
            out["start"] = self._start.value
        return out


class DailyPartitions(TimePartitions):
    """One partition per UTC day, named ``date`` by default; values ``d:YYYY-MM-DD``."""

    __slots__ = ()

    def __init__(self, name: str = "date", start: str | date | None = None) -> None:
        TimePartitions.__init__(self, name, "day", start)


class HourlyPartitions(TimePartitions):
    """One partition per UTC hour, named ``hour`` by default; values ``t:YYYY-MM-DDTHH:00:00.000000Z``."""

    __slots__ = ()

    def __init__(self, name: str = "hour", start: str | date | None = None) -> None:
        TimePartitions.__init__(self, name, "hour", start)


@dataclass(frozen=True, slots=True)
class StaticPartitions:
    """A fixed set of string partitions (regions, customers); values are membership-checked."""

    name: str
    values: Sequence[str]

    kind = "static"

    def __post_init__(self) -> None:
        _check_name(self.name)
        values = self.values
        if isinstance(values, str) or not isinstance(values, Iterable):
            raise _error(self.name, "values must be a list of strings")
        values = tuple(values)
        if not values or not all(isinstance(v, str) for v in values):
            raise _error(self.name, "values must be a non-empty list of strings")
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise _error(self.name, f"duplicate values {duplicates}")
        object.__setattr__(self, "values", values)

    def value_of(self, value: str) -> PartitionValue:
        """``s:`` + base64url of ``value``, which must be one of :attr:`values`."""
        if not isinstance(value, str) or value not in self.values:
            raise _error(self.name, f"{value!r} is not one of {list(self.values)}")
        return PartitionValue("s", value)

    def check(self, value: PartitionValue) -> None:
        if value.tag != "s":
            raise _error(self.name, f"{value.display()!r} is not one of {list(self.values)}")
        self.value_of(str(value.value))

    def python_value(self, value: PartitionValue) -> str:
        return str(value.value)

    def to_manifest(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "static", "values": list(self.values)}


PartitionDimension = TimePartitions | StaticPartitions


def normalize_partitions(partitions: object) -> tuple[PartitionDimension, ...]:
    """``@asset(partitions=...)``: None, one dimension, or a list of them (multi-dimensional)."""
    if partitions is None:
        return ()
    items = [partitions] if isinstance(partitions, TimePartitions | StaticPartitions) else partitions
    if not isinstance(items, list | tuple):
        raise TypeError(f"partitions must be a partition dimension or a list of them, not {partitions!r}")
    dims: list[PartitionDimension] = []
    for item in items:
        if not isinstance(item, TimePartitions | StaticPartitions):
            raise TypeError(f"partitions: {item!r} is not a partition dimension")
        if any(d.name == item.name for d in dims):
            raise _error(item.name, "appears twice in partitions")
        dims.append(item)
    return tuple(dims)


def dimension_from_manifest(spec: Mapping[str, Any] | PartitionDimension) -> PartitionDimension:
    """Rebuild a dimension from its manifest form ``{name, kind, granularity?, values?, start?}``."""
    if isinstance(spec, TimePartitions | StaticPartitions):
        return spec
    if not isinstance(spec, Mapping):
        raise InvalidPartitionKey(f"partition dimension {spec!r} must be an object")
    kind = spec.get("kind")
    if kind == "time":
        return TimePartitions(spec.get("name"), spec.get("granularity", "day"), spec.get("start"))  # type: ignore[arg-type]
    if kind == "static":
        return StaticPartitions(spec.get("name"), spec.get("values"))  # type: ignore[arg-type]
    raise InvalidPartitionKey(
        f"partition dimension {spec.get('name')!r} has unknown kind {kind!r} (expected time or static)"
    )


def partition_key_from_cli(
    dimensions: Sequence[Mapping[str, Any] | PartitionDimension], values: Mapping[str, str]
) -> str:
    """The canonical partition key for ``name=value`` pairs typed by a user, tagged by dimension kind.

    ``dimensions`` are the asset's (manifest dicts or dimension objects). ``{"date": "2025-01-15"}``
    over a daily dimension gives ``date=d:2025-01-15``.

    Raises:
        InvalidPartitionKey: the asset is not partitioned, an unknown or missing dimension, or a value
            the dimension does not allow.
    """
    dims = {d.name: d for d in map(dimension_from_manifest, dimensions)}
    if not dims:
        if values:
            raise InvalidPartitionKey("the asset is not partitioned; drop the partition values")
        return ""
    unknown = sorted(set(values) - set(dims))
    if unknown:
        raise InvalidPartitionKey(
            f"unknown partition dimension(s) {', '.join(unknown)}; the asset's are {', '.join(sorted(dims))}",
            details={"unknown": unknown},
        )
    missing = sorted(set(dims) - set(values))
    if missing:
        raise InvalidPartitionKey(
            f"missing partition dimension(s) {', '.join(missing)} (give each as name=value)",
            details={"missing": missing},
        )
    return PartitionKey.of({name: dims[name].value_of(values[name]) for name in dims}).render()


@dataclass(frozen=True, slots=True)
class AssetPartition:
    """The partition an attempt materializes: per-dimension Python values (``ctx.partition_key["date"]``),
    ``str()`` in the user's spelling, and ``canonical``, the wire text Servo stores (not for display).

    Dates are ``datetime.date``, hours aware UTC ``datetime``, static values ``str``. Falsy when the
    asset is unpartitioned.
    """

    canonical: str
    key: PartitionKey
    values: Mapping[str, Any]

    def __getitem__(self, dimension: str) -> Any:
        return self.values[dimension]

    def __bool__(self) -> bool:
        return bool(self.values)

    def __str__(self) -> str:
        """The user's spelling (``2025-03-01``; ``date=2025-03-01, region=eu``), never ``.canonical``."""
        return self.key.display()


UNPARTITIONED = AssetPartition("", PartitionKey(), MappingProxyType({}))


def resolve_partition(dimensions: Sequence[PartitionDimension], canonical: str | None) -> AssetPartition:
    """Check a canonical key against an asset's dimensions and decode its values.

    Raises:
        InvalidPartitionKey: unparsable, dimensions differ from the asset's, or a value not allowed.
    """
    key = parse_partition_key(canonical or "")
    given = sorted(name for name, _ in key.dimensions)
    expected = sorted(d.name for d in dimensions)
    if given != expected:
        # The user's spelling: the run's key is shown as they typed it, never its wire encoding.
        shown = ", ".join(f"{name}={value.display()}" for name, value in key.dimensions)
        if not expected:
            raise InvalidPartitionKey(f"the asset is not partitioned, but the run is for partition {shown}")
        raise InvalidPartitionKey(
            f"the run is for partition {shown or '(none)'}, but the asset is partitioned by "
            f"{', '.join(expected)}",
            details={"partition": shown, "expected": expected},
        )
    if not expected:
        return UNPARTITIONED
    by_name = {d.name: d for d in dimensions}
    values: dict[str, Any] = {}
    for name, value in key.dimensions:
        by_name[name].check(value)
        values[name] = by_name[name].python_value(value)
    return AssetPartition(key.render(), key, MappingProxyType(values))
