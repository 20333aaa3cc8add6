"""Schedules in the SDK (automation §3): ``ScheduleDefinition(...)`` or ``@schedule(...)`` on a function.

A schedule runs no user code: the decorated function only names it (its body never runs). Both forms are
validated when defined, by the same rules deploy applies (``servo.core.schedules``), so a bad cron,
timezone, limit, label or empty target fails at import with the field named, not at deploy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any, TypeVar

from servo.core.errors import InvalidSchedule
from servo.core.keys import AssetKey
from servo.core.schedules import (
    DEFAULT_CATCHUP_WINDOW_MINUTES,
    DEFAULT_MAX_CATCHUP_TICKS,
    ScheduleSpec,
    parse_schedule,
)
from servo.sdk._asset import ASSET_ATTR, AssetDefinition
from servo.sdk._definitions import CodeLocation, attached, code_location, definition_error

SCHEDULE_ATTR = "__servo_schedule__"

F = TypeVar("F", bound=Callable[..., Any])
TargetItem = str | AssetKey | AssetDefinition | Callable[..., Any]


class ScheduleDefinitionError(InvalidSchedule):
    """A schedule that cannot be deployed; ``details["field"]`` names the bad argument's manifest field."""


def _asset_definition(item: object) -> AssetDefinition | None:
    found = item if isinstance(item, AssetDefinition) else getattr(item, ASSET_ATTR, None)
    return found if isinstance(found, AssetDefinition) else None


def target_items(target: object) -> list[object]:
    one = isinstance(target, str | AssetKey | AssetDefinition) or callable(target)
    items = [target] if one else target
    if not isinstance(items, Iterable) or isinstance(items, Mapping):
        raise InvalidSchedule(
            f"target: must be an asset or a list of assets, not {target!r}", details={"field": "target"}
        )
    return list(items)


def target_key(item: object) -> str:
    definition = _asset_definition(item)
    if definition is not None:
        return str(definition.key)
    if isinstance(item, str | AssetKey):
        return str(item)
    raise InvalidSchedule(
        f"target: {item!r} is not an asset key ('ns.name') or an @asset function", details={"field": "target"}
    )


def _check_known_targets(spec: ScheduleSpec, items: list[object]) -> None:
    """When every target is an @asset object its partitions are known already: check the rule now."""
    definitions = [_asset_definition(item) for item in items]
    known = [d for d in definitions if d is not None]
    if known and len(known) == len(definitions):
        spec.check_targets({str(d.key): [dim.to_manifest() for dim in d.partitions] for d in known})


def _rule_value(value: object) -> object:
    # Dates and aware datetimes are the natural Python spelling of a literal time partition.
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value  # left for the rule check to refuse: a naive time has no UTC hour
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _partition(partition: object) -> object:
    if isinstance(partition, Mapping):
        return {name: _rule_value(value) for name, value in partition.items()}
    return partition


@dataclass(frozen=True, slots=True)
class ScheduleDefinition:
    """A cron schedule of assets (automation §3), validated when constructed.

    Args:
        id: the schedule id, ``[a-z][a-z0-9_]{0,63}``, unique in the project.
        cron: five fields (``*``, lists, ranges, steps, names; 0 and 7 are Sunday) or ``@hourly``,
            ``@daily``, ``@weekly``, ``@monthly``, matched on wall-clock time in ``timezone``.
        target: the assets each tick runs: keys (``"ns.name"``) or @asset functions, one or a list.
        timezone: an IANA zone name (default ``UTC``).
        partition: for partitioned targets: ``"previous"``/``"current"`` (the UTC window before or
            containing the tick) or a mapping per dimension (time: those words or a literal; static: a
            literal).
        labels: ``str -> str`` labels of every run; the ``servo.`` prefix is reserved.
        catchup_window_minutes: how far back a late sweep still fires missed ticks (1..10080).
        max_catchup_ticks: ticks fired per sweep at most (1..1000); the rest wait inside the window.
        default_enabled: whether the schedule starts enabled the first time it is deployed.

    Raises:
        ScheduleDefinitionError: the first bad argument, named in ``details["field"]``.
    """

    id: str
    cron: str
    target: Any
    timezone: str = "UTC"
    partition: str | Mapping[str, Any] | None = None
    labels: Mapping[str, str] | None = None
    catchup_window_minutes: int = DEFAULT_CATCHUP_WINDOW_MINUTES
    max_catchup_ticks: int = DEFAULT_MAX_CATCHUP_TICKS
    default_enabled: bool = False
    code: CodeLocation | None = field(default=None, compare=False)
    spec: ScheduleSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            items = target_items(self.target)
            raw: dict[str, Any] = {
                "id": self.id,
                "cron": self.cron,
                "timezone": self.timezone,
                "target": [target_key(item) for item in items],
                "labels": dict(self.labels) if isinstance(self.labels, Mapping) else self.labels,
                "catchupWindowMinutes": self.catchup_window_minutes,
                "maxCatchupTicks": self.max_catchup_ticks,
                "defaultEnabled": self.default_enabled,
            }
            if self.partition is not None:
                raw["partition"] = _partition(self.partition)
            spec = parse_schedule(raw)
            _check_known_targets(spec, items)
        except InvalidSchedule as exc:
            raise definition_error(ScheduleDefinitionError, exc, "schedule", self.id, self.code) from None
        object.__setattr__(self, "target", spec.target)
        object.__setattr__(self, "labels", MappingProxyType(dict(spec.labels)))
        object.__setattr__(self, "spec", spec)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest ``schedules[]`` entry (camelCase), the form deploy validates and hashes."""
        return self.spec.to_manifest()

    @property
    def definition_hash(self) -> str:
        return self.spec.definition_hash


def schedule_of(obj: object) -> ScheduleDefinition:
    """The definition of a ``@schedule`` function (or ``obj`` itself if it is one)."""
    return attached(
        obj, ScheduleDefinition, SCHEDULE_ATTR, "a schedule (@schedule function or ScheduleDefinition)"
    )


def schedule(
    *,
    cron: str,
    target: Any,
    timezone: str = "UTC",
    partition: str | Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    catchup_window_minutes: int = DEFAULT_CATCHUP_WINDOW_MINUTES,
    max_catchup_ticks: int = DEFAULT_MAX_CATCHUP_TICKS,
    default_enabled: bool = False,
    name: str | None = None,
) -> Callable[[F], F]:
    """Declare a schedule named after the decorated function (or ``name``); the body never runs.

    The options are :class:`ScheduleDefinition`'s. Returns the function unchanged except for its
    ``__servo_schedule__`` attribute.

    Raises:
        ScheduleDefinitionError: a bad option; the message starts with the function's ``file:line``.
    """

    def decorate(fn: F) -> F:
        if not inspect.isfunction(fn):
            raise TypeError(f"@schedule decorates functions, not {fn!r}")
        if hasattr(fn, SCHEDULE_ATTR):
            raise TypeError(f"{fn.__name__}() is already a @schedule")
        where = code_location(fn)
        definition = ScheduleDefinition(
            id=fn.__name__ if name is None else name,
            cron=cron,
            target=target,
            timezone=timezone,
            partition=partition,
            labels=labels,
            catchup_window_minutes=catchup_window_minutes,
            max_catchup_ticks=max_catchup_ticks,
            default_enabled=default_enabled,
            code=where,
        )
        setattr(fn, SCHEDULE_ATTR, definition)
        return fn

    return decorate
