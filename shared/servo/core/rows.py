"""Rows of the projection tables (contracts §9), as the fold produces and Parquet stores them.

Columns keep the golden schemas' names, order and types (a compatibility floor); Servo's additions
are nullable and come before ``row_version`` as the reference's code does. Times are Int64 epoch
milliseconds. ``row_version`` is the event_id (ULID) of the last event that touched the row.

Codec log (rename nothing stored without a line here):
- v1: golden columns + the reference code's task columns + Servo's nullable additions.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: str
    plan_id: str
    state: str  # RunState value
    run_key: str | None
    cancel_requested: bool
    tasks_total: int
    tasks_completed: int
    tasks_succeeded: int
    tasks_failed: int
    tasks_skipped: int
    tasks_cancelled: int
    triggered_at: int
    completed_at: int | None
    labels: str | None  # JSON object string, keys sorted
    code_version: str | None
    # Servo additions (nullable):
    cancel_requested_at: int | None = None
    cancel_reason: str | None = None
    timeout_at: int | None = None  # run timeout deadline (ms); past it the sweep times the run out
    timed_out: bool | None = None
    traceparent: str | None = None
    trigger_type: str | None = None  # what started the run: RunTriggered.trigger["type"] ("manual")
    trigger_json: str | None = None  # RunTriggered.trigger whole (its source's ids), canonical JSON
    row_version: str = ""


@dataclass(frozen=True, slots=True)
class TaskRow:
    run_id: str
    task_key: str
    state: str  # TaskState value
    attempt: int
    attempt_id: str | None
    started_at: int | None
    completed_at: int | None
    error_message: str | None
    deps_total: int
    deps_satisfied_count: int
    max_attempts: int
    heartbeat_timeout_sec: int
    last_heartbeat_at: int | None
    ready_at: int | None
    asset_key: str | None
    partition_key: str | None
    # The reference code's columns (nullable):
    requires_visible_output: bool | None = None
    materialization_id: str | None = None
    output_visibility_state: str | None = None
    published_at: int | None = None
    publish_error: str | None = None
    retry_not_before: int | None = None
    delta_table: str | None = None
    delta_version: int | None = None
    delta_partition: str | None = None
    execution_lineage_ref: str | None = None
    # Servo additions (nullable):
    error_category: str | None = None
    output_json: str | None = None  # the worker's reported output, canonical JSON
    timeout_seconds: int | None = None
    dispatched_at: int | None = None
    error_stack_trace: str | None = None  # the failed attempt's traceback, as the worker formatted it
    progress_message: str | None = None  # the running attempt's last ctx.report_progress
    progress_pct: int | None = None
    code_version: str | None = None  # the asset's transformFingerprint the attempt ran (TaskDef)
    row_version: str = ""


@dataclass(frozen=True, slots=True)
class DepRow:
    run_id: str
    upstream_task_key: str
    downstream_task_key: str
    satisfied: bool
    resolution: str | None
    satisfied_at: int | None
    satisfying_attempt: int | None
    row_version: str = ""


@dataclass(frozen=True, slots=True)
class TimerRow:
    timer_id: str
    cloud_task_id: str | None
    timer_type: str  # RETRY | HEARTBEAT_CHECK | CRON | SLA_CHECK
    run_id: str | None
    task_key: str | None
    attempt: int | None
    fire_at: int
    state: str  # SCHEDULED | FIRED | CANCELLED
    payload: str | None
    row_version: str = ""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    run_id: str
    task_key: str
    attempt: int
    dispatch_id: str
    cloud_task_id: str | None
    status: str  # PENDING | CREATED
    attempt_id: str
    worker_queue: str
    created_at: int
    row_version: str = ""


@dataclass(frozen=True, slots=True)
class RunKeyRow:
    tenant_id: str
    workspace_id: str
    run_key: str
    run_id: str
    request_fingerprint: str
    code_version: str | None
    created_at: int
    row_version: str = ""


@dataclass(frozen=True, slots=True)
class IdempotencyRow:
    tenant_id: str
    workspace_id: str
    idempotency_key: str
    event_id: str
    event_type: str
    recorded_at: int
    row_version: str = ""


_MAKERS: dict[type, Callable[..., Any]] = {}


def row_maker(cls: type[R]) -> Callable[..., R]:
    """A constructor of ``cls`` rows taking what ``cls(...)`` takes: for the frozen slotted rows above
    about ten times as fast, and the very row ``cls(...)`` makes.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (its own
    ``__setattr__`` refuses), about 0.6 µs a field: a task row took ~20 µs, and the fold makes two or
    three rows an event. So the row is built as an instance of a plain twin class with the same
    slots, whose ``__init__`` assigns them directly, and then becomes an instance of ``cls``
    (``__class__`` may change between classes of one layout): equal, hashed, shown and frozen as
    ``cls(...)``'s. A class that is not such a row (no slots of its own, a base, a
    ``__post_init__``) is its own constructor.
    """
    maker = _MAKERS.get(cls)
    if maker is None:
        maker = _MAKERS[cls] = _maker(cls)
    return maker


def _maker(cls: type[R]) -> Callable[..., R]:
    names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    params = getattr(cls, "__dataclass_params__", None)
    if (
        params is None
        or not params.frozen
        or cls.__bases__ != (object,)
        or cls.__dict__.get("__slots__") != names
        or hasattr(cls, "__post_init__")
        # The twin has no per-row default (default_factory): such a class builds its own rows.
        or any(f.default_factory is not dataclasses.MISSING for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    ):
        return cls
    # The same parameters and defaults as ``cls``'s ``__init__``: values may be given by name too.
    params_of = [
        (f.name, Any, dataclasses.field(default=f.default))
        if f.default is not dataclasses.MISSING
        else f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    ]
    twin = dataclasses.make_dataclass(f"_{cls.__name__}Draft", params_of, slots=True, eq=False, repr=False)

    def make(*values: Any, **named: Any) -> R:
        row = twin(*values, **named)
        row.__class__ = cls
        return row

    return make


_REPLACE_SPECS: dict[type, tuple[Callable[[Any], tuple[Any, ...]], dict[str, int], Callable[..., Any]]] = {}


def replace_row(row: R, /, **changes: Any) -> R:
    """``dataclasses.replace`` for the rows above, without its per-call walk over the fields.

    The fold replaces a row for nearly every event it applies; the generic replace cost about as
    much as the rest of the fold's handler work.

    Raises:
        TypeError: a change names no field of the row.
    """
    cls = type(row)
    spec = _REPLACE_SPECS.get(cls)
    if spec is None:
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        spec = _REPLACE_SPECS[cls] = (
            operator.attrgetter(*names),
            {n: i for i, n in enumerate(names)},
            row_maker(cls),
        )
    get, index, make = spec
    values = list(get(row))
    for name, value in changes.items():
        position = index.get(name)
        if position is None:
            raise TypeError(f"{cls.__name__} has no field {name!r}")
        values[position] = value
    return make(*values)
