"""A run partition stored as a chain of immutable segments: one base and a few deltas.

A segment is one Parquet file holding, for one run, rows of every table (a ``list<struct>`` column
per table, each struct being exactly that table's schema), tombstones of removed rows and the events
the segment applied. One file per compaction per run keeps the write count of a small batch at one
object per touched run instead of one per table. A delta holds only the rows a batch changed, so an
event on a 10,000-task run writes a few rows, not the run; once a chain grows past
``MAX_CHAIN`` the compactor, which has the whole partition in memory anyway, writes a fresh base.

Tombstones are durable deletions (an outbox row removed by TaskStarted must not resurrect from an
older segment of the chain); they are applied after the segment's upserts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from servo.core.errors import InvalidInput
from servo.core.rows import RunRow
from servo.core.state import RunPartition
from servo.projections import schemas
from servo.projections.codec import arrow_to_rows, read_parquet, rows_to_struct, write_parquet

MAX_CHAIN = 8  # segments per run (base + deltas) before a compaction rewrites a base

# RunPartition attribute -> table; "run" is the single runs row.
_DICT_TABLES: tuple[tuple[str, schemas.Table], ...] = (
    ("tasks", schemas.TASKS),
    ("deps", schemas.DEP_SATISFACTION),
    ("timers", schemas.TIMERS),
    ("outbox", schemas.DISPATCH_OUTBOX),
    ("idempotency", schemas.IDEMPOTENCY_KEYS),
)
_SEGMENT_TABLES = (schemas.RUNS, *(t for _, t in _DICT_TABLES))
_TOMBSTONE = pa.struct(
    [pa.field("table", pa.string(), nullable=False), pa.field("key", pa.string(), nullable=False)]
)


def _list_of(struct_type: pa.DataType) -> pa.DataType:
    return pa.list_(pa.field("item", struct_type, nullable=False))


SEGMENT_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("base", pa.bool_(), nullable=False),
        *(pa.field(t.name, _list_of(pa.struct(list(t.schema))), nullable=False) for t in _SEGMENT_TABLES),
        pa.field("tombstones", _list_of(_TOMBSTONE), nullable=False),
        pa.field("events", _list_of(pa.struct(list(schemas.EVENTS_SCHEMA))), nullable=False),
    ]
)


@dataclass(frozen=True, slots=True)
class Segment:
    """Rows one compaction wrote for one run; ``base`` segments are complete, deltas are changes."""

    run_id: str
    base: bool
    rows: dict[str, list[Any]] = field(default_factory=dict)  # table name -> upserted rows
    tombstones: tuple[tuple[str, str], ...] = ()  # (table name, row key)
    events: dict[str, str] = field(default_factory=dict)  # event_id -> canonical JSON body

    @property
    def is_empty(self) -> bool:
        return not (any(self.rows.values()) or self.tombstones or self.events)


def _one(values: pa.Array, name: str) -> pa.ListArray:
    # Built with the schema's own list type, so the table needs no cast (a per-column compute call).
    offsets = pa.array([0, len(values)], pa.int32())
    return pa.ListArray.from_arrays(offsets, values, type=SEGMENT_SCHEMA.field(name).type)


def encode_segment(segment: Segment) -> bytes:
    """Parquet bytes of a segment (deterministic: equal segments give equal bytes).

    A delta carries only the tables it has rows for: every column costs footer bytes, and a one-event
    delta would otherwise be mostly metadata of empty columns.
    """
    fields: list[pa.Field] = [SEGMENT_SCHEMA.field("run_id"), SEGMENT_SCHEMA.field("base")]
    # Typed scalars: an untyped pa.array infers the type, and inference tries to import dateutil
    # (absent, so retried on every call).
    columns: list[pa.Array] = [pa.array([segment.run_id], pa.string()), pa.array([segment.base], pa.bool_())]
    for table in _SEGMENT_TABLES:
        rows = sorted(segment.rows.get(table.name, ()), key=table.key)
        if rows or segment.base:
            fields.append(SEGMENT_SCHEMA.field(table.name))
            columns.append(_one(rows_to_struct(table, rows), table.name))
    tombs = sorted(segment.tombstones)
    fields.append(SEGMENT_SCHEMA.field("tombstones"))
    columns.append(
        _one(
            pa.StructArray.from_arrays(
                [pa.array([t for t, _ in tombs], pa.string()), pa.array([k for _, k in tombs], pa.string())],
                fields=list(_TOMBSTONE),
            ),
            "tombstones",
        )
    )
    ids = sorted(segment.events)
    fields.append(SEGMENT_SCHEMA.field("events"))
    columns.append(
        _one(
            pa.StructArray.from_arrays(
                [pa.array(ids, pa.string()), pa.array([segment.events[i] for i in ids], pa.string())],
                fields=list(schemas.EVENTS_SCHEMA),
            ),
            "events",
        )
    )
    return write_parquet(pa.Table.from_arrays(columns, schema=pa.schema(fields)))


def decode_segment(data: bytes, what: str = "segment") -> Segment:
    """A segment from Parquet bytes written by :func:`encode_segment`.

    Raises:
        InvalidInput: not Parquet, or not a segment.
    """
    table = read_parquet(data, what)
    missing = {"run_id", "base", "tombstones", "events"} - set(table.column_names)
    if missing or table.num_rows != 1:
        raise InvalidInput(
            f"projection file {what} is not a run segment", details={"missing": sorted(missing)}
        )
    rows: dict[str, list[Any]] = {}
    for t in _SEGMENT_TABLES:
        if t.name in table.column_names:
            rows[t.name] = arrow_to_rows(t, table.column(t.name).combine_chunks().flatten())
    tombs = table.column("tombstones").combine_chunks().flatten()
    events = table.column("events").combine_chunks().flatten()
    return Segment(
        run_id=table.column("run_id")[0].as_py(),
        base=table.column("base")[0].as_py(),
        rows=rows,
        tombstones=tuple(zip(tombs.field("table").to_pylist(), tombs.field("key").to_pylist(), strict=True)),
        events=dict(zip(events.field("event_id").to_pylist(), events.field("body").to_pylist(), strict=True)),
    )


def _dict_key(attr: str, key: Any) -> str:
    return schemas.dep_key(*key) if attr == "deps" else str(key)


def _row_dict_key(attr: str, table: schemas.Table, row: Any) -> Any:
    return (row.upstream_task_key, row.downstream_task_key) if attr == "deps" else table.key(row)


def apply_segments(
    run_id: str, segments: Iterable[Segment], decode_event: Callable[[str], Any]
) -> RunPartition:
    """Replay a chain (base first) into a RunPartition; events are decoded with ``decode_event``."""
    part = RunPartition(run_id=run_id)
    for seg in segments:
        if seg.base:
            part = RunPartition(run_id=run_id)
        for row in seg.rows.get("runs", ()):
            part.run = row
        for attr, table in _DICT_TABLES:
            target: dict[Any, Any] = getattr(part, attr)
            for row in seg.rows.get(table.name, ()):
                target[_row_dict_key(attr, table, row)] = row
        for table_name, key in seg.tombstones:
            if table_name == "runs":
                part.run = None
                continue
            for attr, table in _DICT_TABLES:
                if table.name == table_name:
                    target = getattr(part, attr)
                    target.pop(tuple(key.split("\n", 1)) if attr == "deps" else key, None)
        for event_id, body in seg.events.items():
            part.events[event_id] = decode_event(body)
    return part


def full_segment(part: RunPartition, encode_event: Callable[[Any], str]) -> Segment:
    """A base segment holding the whole partition."""
    rows: dict[str, list[Any]] = {"runs": [part.run] if part.run is not None else []}
    for attr, table in _DICT_TABLES:
        rows[table.name] = list(getattr(part, attr).values())
    events = {eid: encode_event(e) for eid, e in part.events.items()}
    return Segment(part.run_id, True, rows, (), events)


def diff_segment(old: RunPartition, new: RunPartition, encode_event: Callable[[Any], str]) -> Segment:
    """A delta turning ``old`` into ``new``: changed rows, tombstones of removed keys, new events."""
    rows: dict[str, list[Any]] = {}
    tombs: list[tuple[str, str]] = []
    run: RunRow | None = new.run
    if run is not None and run is not old.run and run != old.run:
        rows["runs"] = [run]
    elif run is None and old.run is not None:
        tombs.append(("runs", old.run_id))
    for attr, table in _DICT_TABLES:
        before: dict[Any, Any] = getattr(old, attr)
        after: dict[Any, Any] = getattr(new, attr)
        rows[table.name] = [
            row for key, row in after.items() if (prev := before.get(key)) is not row and prev != row
        ]
        tombs.extend((table.name, _dict_key(attr, key)) for key in before if key not in after)
    events = {eid: encode_event(e) for eid, e in new.events.items() if eid not in old.events}
    return Segment(new.run_id, False, rows, tuple(tombs), events)
