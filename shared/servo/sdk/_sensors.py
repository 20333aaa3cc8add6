"""Sensors in the SDK (automation §3): ``@sensor`` and ``@run_status_sensor`` functions, what they
return (``RunRequest``, ``SkipReason``, ``None`` or a list of requests) and the context they are called
with.

Definitions are validated when decorated, by the same rules deploy applies (``servo.core.sensors``), so
a bad id, interval, timeout or target fails at import with the field named. What a sensor returns is
checked by :func:`evaluation_outcome` (the worker calls it) and, against the deployed definition, by the
result callback.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar

from servo.core.errors import InvalidSchedule
from servo.core.schedules import reserved_labels
from servo.core.sensors import (
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_RUN_REQUESTS,
    InvalidSensor,
    SensorSpec,
    check_cursor,
    parse_sensor,
)
from servo.sdk._definitions import CodeLocation, attached, code_location, definition_error
from servo.sdk._schedules import target_items, target_key

SENSOR_ATTR = "__servo_sensor__"

F = TypeVar("F", bound=Callable[..., Any])


class SensorDefinitionError(InvalidSensor):
    """A sensor that cannot be deployed, or a result it may not return; ``details["field"]`` names why."""


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A run a sensor asks for.

    Args:
        run_key: the same key from the same sensor never makes a second run; None derives one from the
            evaluation (poll), the message (push) or the run (run status).
        asset_selection: asset keys (or @asset functions) within the sensor's target; None = all of it.
        partition_key: a canonical key (``date=d:2025-01-15``) or a mapping per dimension.
        labels: ``str -> str`` run labels; the ``servo.`` prefix is reserved.

    Raises:
        SensorDefinitionError: a bad argument, named in ``details["field"]``.
    """

    run_key: str | None = None
    asset_selection: Any = None
    partition_key: str | Mapping[str, Any] | None = None
    labels: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.run_key is not None and (not isinstance(self.run_key, str) or not self.run_key):
            raise SensorDefinitionError(
                f"RunRequest.run_key must be a non-empty string, not {self.run_key!r}",
                details={"field": "runKey"},
            )
        labels = {} if self.labels is None else self.labels
        if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in labels.items()
        ):
            raise SensorDefinitionError(
                f"RunRequest.labels must map non-empty strings to strings, not {labels!r}",
                details={"field": "labels"},
            )
        reserved = reserved_labels(labels)
        if reserved:
            raise SensorDefinitionError(
                f"RunRequest.labels {', '.join(reserved)}: the servo. prefix is reserved",
                details={"field": "labels", "labels": reserved},
            )
        if self.partition_key is not None and not isinstance(self.partition_key, str | Mapping):
            raise SensorDefinitionError(
                f"RunRequest.partition_key must be a canonical key or a mapping, not {self.partition_key!r}",
                details={"field": "partitionKey"},
            )
        selection = None
        if self.asset_selection is not None:
            try:
                selection = [target_key(item) for item in target_items(self.asset_selection)]
            except InvalidSchedule as exc:
                raise SensorDefinitionError(
                    f"RunRequest.asset_selection: {exc.message}", details={"field": "assetSelection"}
                ) from None
        object.__setattr__(self, "asset_selection", None if selection is None else tuple(selection))
        object.__setattr__(self, "labels", MappingProxyType(dict(labels)))

    def to_wire(self, item_id: str | None = None) -> dict[str, Any]:
        """The result's ``runRequests[]`` entry (§4), for the item (``msg:...``/``run:...``) it answers."""
        out: dict[str, Any] = {"labels": dict(self.labels or {})}
        if self.run_key is not None:
            out["runKey"] = self.run_key
        if self.asset_selection is not None:
            out["assetSelection"] = list(self.asset_selection)
        if self.partition_key is not None:
            key = self.partition_key
            out["partitionKey"] = key if isinstance(key, str) else dict(key)
        if item_id is not None:
            out["itemId"] = item_id
        return out


@dataclass(frozen=True, slots=True)
class SkipReason:
    """Nothing to run this time, and why (shown on the evaluation)."""

    message: str = ""


@dataclass(frozen=True, slots=True)
class EvaluationOutcome:
    """What one call returned: TRIGGERED with requests, or SKIPPED with a reason."""

    status: str
    run_requests: tuple[RunRequest, ...] = ()
    skip_reason: str | None = None


def evaluation_outcome(value: object) -> EvaluationOutcome:
    """Normalize a sensor's return value.

    Raises:
        SensorDefinitionError: not a RunRequest, SkipReason, None or a list of at most 100 RunRequests.
    """
    if value is None:
        return EvaluationOutcome("SKIPPED")
    if isinstance(value, SkipReason):
        return EvaluationOutcome("SKIPPED", skip_reason=value.message)
    if isinstance(value, RunRequest):
        return EvaluationOutcome("TRIGGERED", (value,))
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if len(value) > MAX_RUN_REQUESTS:
            raise SensorDefinitionError(
                f"a sensor returned {len(value)} run requests; at most {MAX_RUN_REQUESTS} per call",
                details={"field": "runRequests"},
            )
        bad = [type(v).__name__ for v in value if not isinstance(v, RunRequest)]
        if not bad:
            return EvaluationOutcome("TRIGGERED" if value else "SKIPPED", tuple(value))
        raise SensorDefinitionError(
            f"a sensor's list may hold only RunRequest objects, not {', '.join(sorted(set(bad)))}",
            details={"field": "runRequests"},
        )
    raise SensorDefinitionError(
        "a sensor returns a RunRequest, a SkipReason, None or a list of RunRequests, "
        f"not {type(value).__name__}",
        details={"field": "result"},
    )


# ---------------------------------------------------------------------------------------------- context


@dataclass(frozen=True, slots=True)
class PushMessage:
    """A Pub/Sub message given to a push sensor (``data`` already base64-decoded)."""

    message_id: str
    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)
    publish_time: str | None = None


@dataclass(frozen=True, slots=True)
class WatchedRun:
    """The run a run-status sensor is called for."""

    run_id: str
    state: str
    labels: Mapping[str, str] = field(default_factory=dict)
    selection: tuple[str, ...] = ()
    partition_key: str | None = None
    failed_tasks: tuple[str, ...] = ()


@dataclass(slots=True)
class SensorContext:
    """What a sensor function receives as ``ctx``.

    ``cursor`` is the cursor this evaluation started from; ``update_cursor(v)`` sets the next one (the
    last call wins, at most 16 KiB); ``message`` is set for push sensors, ``run`` for run-status ones.
    """

    sensor_id: str
    evaluation_id: str
    cursor: str | None
    now: datetime
    last_evaluation_at: datetime | None = None
    message: PushMessage | None = None
    run: WatchedRun | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("servo.sensor"))
    _next_cursor: str | None = field(default=None, init=False, repr=False)
    _cursor_updated: bool = field(default=False, init=False, repr=False)

    def update_cursor(self, value: str | None) -> None:
        """Set the cursor the next evaluation starts from (kept only if this evaluation applies).

        Raises:
            SensorDefinitionError: not a string (or None), or over 16 KiB.
        """
        try:
            self._next_cursor = check_cursor(value)
        except InvalidSensor as exc:
            raise SensorDefinitionError(exc.message, details=exc.details) from None
        self._cursor_updated = True

    @property
    def cursor_updated(self) -> bool:
        return self._cursor_updated

    @property
    def next_cursor(self) -> str | None:
        """The cursor after this call: the last update, or the one it started from."""
        return self._next_cursor if self._cursor_updated else self.cursor


# ---------------------------------------------------------------------------------------------- definitions


@dataclass(frozen=True, slots=True)
class SensorDefinition:
    """A sensor (automation §3), validated when constructed; ``fn(ctx)`` runs on the worker."""

    id: str
    fn: Callable[..., Any] = field(compare=False)
    kind: str = "POLL"
    target: Any = None
    minimum_interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    default_enabled: bool = False
    run_status: Sequence[str] | None = None
    monitored_assets: Any = None
    code: CodeLocation | None = field(default=None, compare=False)
    spec: SensorSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            raw: dict[str, Any] = {
                "id": self.id,
                "kind": self.kind,
                "minimumIntervalSeconds": self.minimum_interval_seconds,
                "timeoutSeconds": self.timeout_seconds,
                "defaultEnabled": self.default_enabled,
            }
            if self.target is not None:
                raw["target"] = [target_key(item) for item in target_items(self.target)]
            if self.kind == "RUN_STATUS":
                statuses = self.run_status
                raw["runStatus"] = [statuses] if isinstance(statuses, str) else list(statuses or [])
                if self.monitored_assets is not None:
                    raw["monitoredAssets"] = [target_key(i) for i in target_items(self.monitored_assets)]
            spec = parse_sensor(raw)
        except InvalidSchedule as exc:
            raise definition_error(SensorDefinitionError, exc, "sensor", self.id, self.code) from None
        object.__setattr__(self, "target", spec.target)
        object.__setattr__(self, "spec", spec)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest ``sensors[]`` entry (camelCase), the form deploy validates and hashes."""
        return self.spec.to_manifest()

    @property
    def definition_hash(self) -> str:
        return self.spec.definition_hash


def sensor_of(obj: object) -> SensorDefinition:
    """The definition of a ``@sensor``/``@run_status_sensor`` function (or ``obj`` itself if it is one)."""
    return attached(obj, SensorDefinition, SENSOR_ATTR, "a sensor (@sensor or @run_status_sensor function)")


def _decorate(name: str | None, decorator: str, **options: Any) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        if not inspect.isfunction(fn):
            raise TypeError(f"@{decorator} decorates functions, not {fn!r}")
        if hasattr(fn, SENSOR_ATTR):
            raise TypeError(f"{fn.__name__}() is already a sensor")
        where = code_location(fn)
        definition = SensorDefinition(id=fn.__name__ if name is None else name, fn=fn, code=where, **options)
        setattr(fn, SENSOR_ATTR, definition)
        return fn

    return decorate


def sensor(
    *,
    target: Any,
    minimum_interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
    push: bool = False,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
    default_enabled: bool = False,
    name: str | None = None,
) -> Callable[[F], F]:
    """Declare a sensor named after the decorated function (or ``name``); the worker calls it with ``ctx``.

    Args:
        target: the assets its runs may select: keys (``"ns.name"``) or @asset functions.
        minimum_interval_seconds: between two polls, and the backoff after an error (10..86400).
        push: called once per Pub/Sub message (``ctx.message``) instead of on an interval.
        timeout_seconds: how long one call may take (5..900).
        default_enabled: whether it starts enabled the first time it is deployed.

    Raises:
        SensorDefinitionError: a bad option; the message starts with the function's ``file:line``.
    """
    return _decorate(
        name,
        "sensor",
        kind="PUSH" if push else "POLL",
        target=target,
        minimum_interval_seconds=minimum_interval_seconds,
        timeout_seconds=timeout_seconds,
        default_enabled=default_enabled,
    )


def run_status_sensor(
    *,
    run_status: Sequence[str] | str = ("FAILED",),
    monitored_assets: Any = None,
    target: Any = None,
    minimum_interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
    default_enabled: bool = False,
    name: str | None = None,
) -> Callable[[F], F]:
    """Declare a sensor called once per run reaching one of ``run_status`` (``ctx.run``).

    Args:
        run_status: terminal states watched: ``SUCCEEDED``, ``FAILED``, ``CANCELLED``.
        monitored_assets: only runs touching these assets; None = every run.
        target: the assets its RunRequests may select (chaining); None = alerts only.

    Raises:
        SensorDefinitionError: a bad option; the message starts with the function's ``file:line``.
    """
    return _decorate(
        name,
        "run_status_sensor",
        kind="RUN_STATUS",
        target=target,
        run_status=run_status,
        monitored_assets=monitored_assets,
        minimum_interval_seconds=minimum_interval_seconds,
        timeout_seconds=timeout_seconds,
        default_enabled=default_enabled,
    )
