"""The partitions a backfill covers (automation §4 Backfill create, §6.4, B2, B11).

A selector is ``{range: {start, end, where: {dim: value | [values]}}}`` or ``{explicit: [keys]}``, resolved
against the assets' one shared dimension set (manifest form ``{name, kind, granularity?, start?,
values?}``) at the current time, which is passed in. The result is canonical keys (``date=d:2025-01-15``)
sorted by their values dimension by dimension, de-duplicated, 1..10,000 of them. Every refusal is an
``InvalidInput`` whose ``details["field"]`` names the request field (``partitions.range.start``, ...).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from servo.core.errors import InvalidInput, InvalidSchedule
from servo.core.partition_compat import describe_dimensions
from servo.core.partition_keys import (
    PartitionKey,
    PartitionValue,
    parse_partition_key,
    require_canonical_partition_key,
)
from servo.core.schedule_partitions import literal_value, window_value
from servo.core.schedules import shared_dimensions
from servo.core.timefmt import parse_timestamp_us

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_CONCURRENT_RUNS",
    "MAX_BACKFILL_PARTITIONS",
    "backfill_dimensions",
    "check_backfill_settings",
    "chunk_partitions",
    "current_period",
    "partition_sort_key",
    "period_count",
    "resolve_partitions",
]

MAX_BACKFILL_PARTITIONS = 10_000
DEFAULT_CHUNK_SIZE = 5
DEFAULT_MAX_CONCURRENT_RUNS = 10
_MAX_CHUNK_SIZE = 100
_MAX_CONCURRENT_RUNS = 100
# A step from a period's start that always lands inside the next period (months <= 31 days, years <= 366).
_STEP_S = {"hour": 3600, "day": 86_400, "month": 32 * 86_400, "year": 366 * 86_400}


def _bad(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field_name}: {message}", details={"field": field_name})


def backfill_dimensions(
    assets: Sequence[str], dimensions_of: Mapping[str, Sequence[Mapping[str, Any]]]
) -> Sequence[Mapping[str, Any]]:
    """The one dimension set the backfill's assets share (``dimensions_of``: deployed asset -> dims).

    Raises:
        InvalidInput (``field = assets``): no assets, an unknown one, assets partitioned differently, or
            unpartitioned assets (a backfill is over partitions).
    """
    if not assets:
        raise _bad("assets", "name at least one asset")
    unknown = [key for key in assets if key not in dimensions_of]
    if unknown:
        raise _bad("assets", f"unknown asset(s) {', '.join(unknown)}")
    try:
        dims = shared_dimensions(assets, dimensions_of)
    except InvalidSchedule:
        shown = "; ".join(f"{key}: {describe_dimensions(dimensions_of[key])}" for key in assets)
        raise _bad("assets", f"a backfill's assets share one dimension set; these differ ({shown})") from None
    if not dims:
        raise _bad(
            "assets", f"{', '.join(assets)}: not partitioned; a backfill is over partitions (use `servo run`)"
        )
    return dims


def check_backfill_settings(chunk_size: object, max_concurrent_runs: object) -> tuple[int, int]:
    """``chunkSize`` 1..100 (default 5) and ``maxConcurrentRuns`` chunkSize..100 (default 10)."""
    size = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= _MAX_CHUNK_SIZE:
        raise _bad("chunkSize", f"{chunk_size!r} must be an integer in 1..{_MAX_CHUNK_SIZE}")
    most = max(DEFAULT_MAX_CONCURRENT_RUNS, size) if max_concurrent_runs is None else max_concurrent_runs
    if not isinstance(most, int) or isinstance(most, bool) or not size <= most <= _MAX_CONCURRENT_RUNS:
        raise _bad(
            "maxConcurrentRuns",
            f"{max_concurrent_runs!r} must be an integer in {size}..{_MAX_CONCURRENT_RUNS}",
        )
    return size, most


def _period_start_s(value: PartitionValue) -> int:
    assert isinstance(value.value, str)
    if value.tag == "t":
        return parse_timestamp_us(value.value) // 1_000_000
    return int(datetime.combine(date.fromisoformat(value.value), datetime.min.time(), UTC).timestamp())


def current_period(dim: Mapping[str, Any], now_ms: int) -> PartitionValue:
    """The partition of a time dimension that contains ``now_ms`` (the newest a backfill may name)."""
    return window_value(str(dim.get("granularity", "day")), now_ms // 1000, previous=False)


def period_count(granularity: str, first: PartitionValue, last: PartitionValue) -> int:
    """How many periods lie from ``first`` to ``last`` inclusive (0 if ``last`` is earlier)."""
    a, b = (datetime.fromtimestamp(_period_start_s(v), UTC) for v in (first, last))
    if granularity == "hour":
        n = (b - a).days * 24 + (b - a).seconds // 3600
    elif granularity == "day":
        n = (b - a).days
    elif granularity == "month":
        n = (b.year - a.year) * 12 + b.month - a.month
    else:
        n = b.year - a.year
    return max(n + 1, 0)


def _periods(granularity: str, first: PartitionValue, last: PartitionValue) -> Iterator[PartitionValue]:
    value = first
    while str(value.value) <= str(last.value):
        yield value
        value = window_value(granularity, _period_start_s(value) + _STEP_S[granularity], previous=False)


def _time_value(dim: Mapping[str, Any], text: object, field_name: str, now_ms: int) -> PartitionValue:
    """A user-typed bound or key value of a time dimension: aligned, not before its start, not future."""
    granularity = str(dim.get("granularity", "day"))
    if not isinstance(text, str) or not text:
        raise _bad(field_name, f"{text!r} must be a non-empty string")
    try:
        value = literal_value(granularity, text)
    except InvalidInput as exc:
        raise _bad(field_name, exc.message.removeprefix("partition: ")) from None
    start = dim.get("start")
    if start is not None and str(value.value) < str(start):
        raise _bad(field_name, f"{value.display()} is before the first partition {start} of {dim['name']!r}")
    current = current_period(dim, now_ms)
    if str(value.value) > str(current.value):
        raise _bad(
            field_name,
            f"{value.display()} is in the future (the current {granularity} is {current.display()})",
        )
    return value


def _static_values(dim: Mapping[str, Any], chosen: object, field_name: str) -> list[PartitionValue]:
    allowed = [str(v) for v in dim.get("values") or ()]
    if chosen is None:
        return [PartitionValue("s", v) for v in allowed]
    picked = [chosen] if isinstance(chosen, str) else chosen
    if not isinstance(picked, list) or not picked:
        raise _bad(field_name, f"{chosen!r} must be a value or a non-empty list of values")
    for value in picked:
        if not isinstance(value, str) or value not in allowed:
            raise _bad(field_name, f"{value!r} is not one of {allowed}")
    return [PartitionValue("s", v) for v in dict.fromkeys(picked)]


def partition_sort_key(key: PartitionKey) -> tuple[str, ...]:
    """Keys sort by their values, dimension by dimension (names in byte order): dates chronologically,
    static values alphabetically (their wire form is base64, whose order means nothing to a user)."""
    return tuple(str(value.value) for _, value in key.dimensions)


def _capped(count: int, field_name: str) -> None:
    if count > MAX_BACKFILL_PARTITIONS:
        raise _bad(
            field_name, f"selects {count} partitions; a backfill takes at most {MAX_BACKFILL_PARTITIONS}"
        )


def _resolve_range(raw: object, dims: Sequence[Mapping[str, Any]], now_ms: int) -> list[PartitionKey]:
    if not isinstance(raw, Mapping):
        raise _bad("partitions.range", "must be an object {start, end, where}")
    extra = sorted(set(raw) - {"start", "end", "where"})
    if extra:
        raise _bad(f"partitions.range.{extra[0]}", "unknown field (expected start, end, where)")
    where = raw.get("where") or {}
    if not isinstance(where, Mapping):
        raise _bad("partitions.range.where", "must be an object {dimension: value | [values]}")
    by_name = {str(d["name"]): d for d in dims}
    for name in where:
        if by_name.get(name, {}).get("kind") != "static":
            raise _bad(f"partitions.range.where.{name}", "is not a static dimension of the assets")
    times = [d for d in dims if d.get("kind") == "time"]
    if len(times) > 1:
        raise _bad(
            "partitions.range", "the assets have several time dimensions; list the partitions explicitly"
        )
    axes: list[tuple[str, list[PartitionValue]]] = []
    for dim in dims:
        name = str(dim["name"])
        if dim.get("kind") == "static":
            axes.append((name, _static_values(dim, where.get(name), f"partitions.range.where.{name}")))
    if times:
        dim, granularity = times[0], str(times[0].get("granularity", "day"))
        for bound in ("start", "end"):
            if raw.get(bound) is None:
                raise _bad(f"partitions.range.{bound}", f"is required for the time dimension {dim['name']!r}")
        first = _time_value(dim, raw["start"], "partitions.range.start", now_ms)
        last = _time_value(dim, raw["end"], "partitions.range.end", now_ms)
        if str(first.value) > str(last.value):
            raise _bad("partitions.range.start", f"{first.display()} is after the end {last.display()}")
        total = period_count(granularity, first, last)
        for _, values in axes:
            total *= len(values)
        _capped(total, "partitions.range")
        axes.append((str(dim["name"]), list(_periods(granularity, first, last))))
    else:
        for bound in ("start", "end"):
            if raw.get(bound) is not None:
                raise _bad(f"partitions.range.{bound}", "the assets have no time dimension")
        total = 1
        for _, values in axes:
            total *= len(values)
        _capped(total, "partitions.range")
    names = [name for name, _ in axes]
    return [
        PartitionKey(tuple(zip(names, combo, strict=True)))
        for combo in itertools.product(*(v for _, v in axes))
    ]


def _resolve_explicit(raw: object, dims: Sequence[Mapping[str, Any]], now_ms: int) -> list[PartitionKey]:
    if not isinstance(raw, list) or not raw:
        raise _bad("partitions.explicit", "must be a non-empty list of partition keys")
    if len(raw) > MAX_BACKFILL_PARTITIONS:
        raise _bad(
            "partitions.explicit",
            f"lists {len(raw)} keys; a backfill takes at most {MAX_BACKFILL_PARTITIONS}",
        )
    names = sorted(str(d["name"]) for d in dims)
    keys: list[PartitionKey] = []
    for i, text in enumerate(raw):
        field_name = f"partitions.explicit[{i}]"
        if not isinstance(text, str):
            raise _bad(field_name, f"{text!r} must be a partition key string")
        try:
            require_canonical_partition_key(text)
        except InvalidInput as exc:
            raise _bad(field_name, exc.message) from None
        key = parse_partition_key(text)
        given = sorted(name for name, _ in key.dimensions)
        if given != names:
            raise _bad(
                field_name, f"names dimensions ({', '.join(given)}); the assets have ({', '.join(names)})"
            )
        for dim in dims:
            value = key.get(str(dim["name"]))
            assert value is not None
            if dim.get("kind") == "static":
                if value.tag != "s" or value.value not in (dim.get("values") or ()):
                    raise _bad(
                        field_name, f"{value.display()!r} is not one of {list(dim.get('values') or ())}"
                    )
            elif (
                value.tag not in ("d", "t") or _time_value(dim, str(value.value), field_name, now_ms) != value
            ):
                raise _bad(
                    field_name,
                    f"{value.display()!r} is not a {dim.get('granularity', 'day')} of {dim['name']!r}",
                )
        keys.append(key)
    return keys


def resolve_partitions(
    selector: object, dimensions: Sequence[Mapping[str, Any]], *, now_ms: int
) -> tuple[str, ...]:
    """The canonical keys a selector names, sorted (``partition_sort_key``) and de-duplicated.

    Raises:
        InvalidInput: a malformed selector, a misaligned, future or pre-start bound, start after end, a
            ``where`` value the dimension lacks, an empty list, a key that is not canonical or not a
            partition of the assets, or more than 10,000 keys; ``details["field"]`` names it.
    """
    if (
        not isinstance(selector, Mapping)
        or len(selector) != 1
        or next(iter(selector)) not in ("range", "explicit")
    ):
        raise _bad("partitions", "must be {range: {start, end, where}} or {explicit: [keys]}")
    if "range" in selector:
        keys = _resolve_range(selector["range"], dimensions, now_ms)
    else:
        keys = _resolve_explicit(selector["explicit"], dimensions, now_ms)
    unique = {key.render(): key for key in keys}
    return tuple(sorted(unique, key=lambda text: partition_sort_key(unique[text])))


def chunk_partitions(keys: Sequence[str], chunk_size: int) -> tuple[tuple[str, ...], ...]:
    """The keys cut in order into chunks of ``chunk_size`` (the last may be shorter)."""
    if chunk_size < 1:
        raise _bad("chunkSize", f"{chunk_size} must be at least 1")
    return tuple(tuple(keys[i : i + chunk_size]) for i in range(0, len(keys), chunk_size))
