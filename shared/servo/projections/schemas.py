"""Arrow schemas of the projection tables, derived from the row dataclasses of ``servo.core.rows``.

The row dataclasses are the single source of column names and order (golden columns first, additions
nullable before ``row_version``, as the reference code writes them), so a column added to a row cannot
be forgotten here. Arrow types follow contracts §9: times and ``delta_version`` are Int64, every other
integer is UInt32, ``X | None`` is nullable. The golden schemas in ``fixtures/`` are a floor the tests
check against.

Codec log (rename nothing stored without a line here):
- v1: the seven golden tables + ``events`` (event_id, canonical JSON body) per run partition.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from servo.core.rows import DepRow, IdempotencyRow, OutboxRow, RunKeyRow, RunRow, TaskRow, TimerRow

SCHEMA_VERSION = 1

# Integer columns that hold epoch milliseconds or a 64-bit version rather than a small count.
_INT64_COLUMNS = frozenset({"delta_version", "retry_not_before"})


def _arrow_type(name: str, annotation: Any) -> tuple[pa.DataType, bool]:
    nullable = False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"column {name}: unsupported union {annotation!r}")
        annotation, nullable = inner[0], True
    if annotation is str:
        return pa.string(), nullable
    if annotation is bool:
        return pa.bool_(), nullable
    if annotation is int:
        wide = name.endswith("_at") or name in _INT64_COLUMNS
        return (pa.int64() if wide else pa.uint32()), nullable
    raise TypeError(f"column {name}: unsupported type {annotation!r}")


def schema_of(row_type: type) -> pa.Schema:
    """The Arrow schema of a row dataclass, columns in field order."""
    hints = typing.get_type_hints(row_type)
    fields = []
    for f in dataclasses.fields(row_type):
        arrow_type, nullable = _arrow_type(f.name, hints[f.name])
        fields.append(pa.field(f.name, arrow_type, nullable=nullable))
    return pa.schema(fields)


@dataclass(frozen=True, slots=True)
class Table:
    """One projection table: its row type, schema and the key that identifies a row within a run."""

    name: str
    row_type: type
    schema: pa.Schema
    key: Callable[[Any], str]


def _table(name: str, row_type: type, key: Callable[[Any], str]) -> Table:
    return Table(name, row_type, schema_of(row_type), key)


RUNS = _table("runs", RunRow, lambda r: r.run_id)
TASKS = _table("tasks", TaskRow, lambda r: r.task_key)
# A task key cannot hold a newline (InvalidTaskId), so it separates the two ends of an edge unambiguously.
DEP_SATISFACTION = _table(
    "dep_satisfaction", DepRow, lambda r: f"{r.upstream_task_key}\n{r.downstream_task_key}"
)
TIMERS = _table("timers", TimerRow, lambda r: r.timer_id)
DISPATCH_OUTBOX = _table("dispatch_outbox", OutboxRow, lambda r: r.dispatch_id)
RUN_KEY_INDEX = _table("run_key_index", RunKeyRow, lambda r: r.run_key)
IDEMPOTENCY_KEYS = _table("idempotency_keys", IdempotencyRow, lambda r: r.idempotency_key)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (RUNS, TASKS, DEP_SATISFACTION, TIMERS, DISPATCH_OUTBOX, RUN_KEY_INDEX, IDEMPOTENCY_KEYS)
}

# The events a run partition has applied, so a late (older-ULID) event can re-fold that run alone.
EVENTS_SCHEMA = pa.schema(
    [pa.field("event_id", pa.string(), nullable=False), pa.field("body", pa.string(), nullable=False)]
)


def dep_key(upstream: str, downstream: str) -> str:
    """The DEP_SATISFACTION row key of an edge (see the table's key function)."""
    return f"{upstream}\n{downstream}"
