"""A run partition stored as a chain of immutable segments: one base and a few deltas.

A segment is, for one run, rows of every table (a ``list<struct>`` column per table, each struct
being exactly that table's schema), tombstones of removed rows and the events the segment applied:
one row of a Parquet file. A compaction writes the small segments of every run it touched as one
file, so a publish costs one object write for its rows, not one per table or per run. A delta holds
only the rows a batch changed, so an event on a 10,000-task run writes a few rows, not the run; once
a chain grows past ``MAX_CHAIN`` the compactor, which has the whole partition in memory anyway,
writes a fresh base.

Tombstones are durable deletions (an outbox row removed by TaskStarted must not resurrect from an
older segment of the chain, nor a heartbeat a newer one superseded); they are applied after the
segment's upserts and events. A tombstone of table ``events`` names an event id.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from servo.core.errors import InvalidInput
from servo.core.rows import RunRow
from servo.core.state import RunPartition
from servo.projections import schemas
from servo.projections.codec import arrow_to_rows, read_parquet, write_parquet

MAX_CHAIN = 8  # segments per run (base + deltas) before a compaction rewrites a base
# Up to this many rows (and events) a segment shares its compaction's file with the other runs'; a
# bigger one (a fan-out's base, rewritten every few publishes) gets a file of its own, so that reading
# a small run never means reading and decoding a big one.
SHARED_SEGMENT_MAX_ROWS = 256

# RunPartition attribute -> table; "run" is the single runs row.
_DICT_TABLES: tuple[tuple[str, schemas.Table], ...] = (
    ("tasks", schemas.TASKS),
    ("deps", schemas.DEP_SATISFACTION),
    ("timers", schemas.TIMERS),
    ("outbox", schemas.DISPATCH_OUTBOX),
    ("idempotency", schemas.IDEMPOTENCY_KEYS),
)
SEGMENT_TABLES = (schemas.RUNS, *(t for _, t in _DICT_TABLES))
EVENTS = "events"  # the tombstone table name of a dropped event (a superseded heartbeat)
_TOMBSTONE = pa.struct(
    [pa.field("table", pa.string(), nullable=False), pa.field("key", pa.string(), nullable=False)]
)


def _list_of(struct_type: pa.DataType) -> pa.DataType:
    return pa.list_(pa.field("item", struct_type, nullable=False))


SEGMENT_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("base", pa.bool_(), nullable=False),
        *(pa.field(t.name, _list_of(pa.struct(list(t.schema))), nullable=False) for t in SEGMENT_TABLES),
        pa.field("tombstones", _list_of(_TOMBSTONE), nullable=False),
        pa.field("events", _list_of(pa.struct(list(schemas.EVENTS_SCHEMA))), nullable=False),
    ]
)


# Each table's row as the tuple of its columns, in schema order.
_ROW_TUPLE = {t.name: operator.attrgetter(*t.schema.names) for t in SEGMENT_TABLES}


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

    @property
    def size(self) -> int:
        """Rows, tombstones and events: what the segment costs to store and to decode."""
        return sum(map(len, self.rows.values())) + len(self.tombstones) + len(self.events)


def file_groups(segments: Iterable[Segment]) -> list[list[Segment]]:
    """The files a compaction writes its segments to: one for all the small ones, one per big one."""
    small: list[Segment] = []
    groups: list[list[Segment]] = []
    for seg in segments:
        if seg.size <= SHARED_SEGMENT_MAX_ROWS:
            small.append(seg)
        else:
            groups.append([seg])
    return ([small] if small else []) + groups


def _split(column: pa.ChunkedArray, to_values: Callable[[pa.Array], list[Any]]) -> list[list[Any]]:
    """A list column back into every run's values: converted in one call, then cut back by offsets."""
    lists = column.combine_chunks()
    values = to_values(lists.flatten())
    offsets = lists.offsets.to_pylist()
    return [values[a - offsets[0] : b - offsets[0]] for a, b in itertools.pairwise(offsets)]


def _pairs(values: pa.Array) -> list[Any]:
    return list(zip(values.field(0).to_pylist(), values.field(1).to_pylist(), strict=True))


def encode_segments(segments: Sequence[Segment]) -> bytes:
    """Parquet bytes holding the segments of several runs, a row each (deterministic: the same
    segments, in any order, give the same bytes).

    One compaction writes one such file for every run it touched: under load a publish carries many
    runs, and one file keeps it at one object write and one encoding, whatever their number. Each
    column is built once over every run's rows. A file carries only the tables some segment has rows
    for, bases included (a base resets all its run's tables, listed or not): every leaf column costs
    footer bytes and about as much writer CPU as a few rows, and a one-event delta (or a small run's
    base, without timers or outbox rows) would otherwise be mostly empty columns.

    Raises:
        InvalidInput: a run given twice (its file would not say which segment is the run's).
    """
    ordered = sorted(segments, key=lambda seg: seg.run_id)
    run_ids = [seg.run_id for seg in ordered]
    if len(set(run_ids)) != len(run_ids):
        raise InvalidInput("a segment file cannot hold a run more than once", details={"runs": run_ids})
    fields: list[pa.Field] = [SEGMENT_SCHEMA.field("run_id"), SEGMENT_SCHEMA.field("base")]
    # Typed arrays: an untyped pa.array infers the type, and inference tries to import dateutil
    # (absent, so retried on every call).
    columns: list[pa.Array] = [
        pa.array(run_ids, pa.string()),
        pa.array([seg.base for seg in ordered], pa.bool_()),
    ]
    for table in SEGMENT_TABLES:
        per_run = [sorted(seg.rows.get(table.name, ()), key=table.key) for seg in ordered]
        if any(per_run):
            # A row is a tuple of its columns, and Arrow converts a whole list<struct> column from
            # such tuples in one call: per-column arrays cost a call per column, 80 in a small delta.
            get = _ROW_TUPLE[table.name]
            columns.append(_column(table.name, [list(map(get, rows)) for rows in per_run]))
            fields.append(SEGMENT_SCHEMA.field(table.name))
    fields += [SEGMENT_SCHEMA.field("tombstones"), SEGMENT_SCHEMA.field("events")]
    columns.append(_column("tombstones", [sorted(seg.tombstones) for seg in ordered]))
    columns.append(_column("events", [sorted(seg.events.items()) for seg in ordered]))
    return write_parquet(pa.Table.from_arrays(columns, schema=pa.schema(fields)))


def _column(name: str, per_run: list[list[tuple[Any, ...]]]) -> pa.Array:
    """The list column ``name`` from every run's rows as tuples, typed by the schema (no inference)."""
    return pa.array(per_run, type=SEGMENT_SCHEMA.field(name).type)


def decode_segments(data: bytes, what: str = "segment file") -> dict[str, Segment]:
    """The segments of a file written by :func:`encode_segments`, by run id (a file of one run, as
    earlier versions wrote them, is such a file too).

    Raises:
        InvalidInput: not Parquet, not a segment file, or a run in it twice.
    """
    table = read_parquet(data, what)
    missing = {"run_id", "base", "tombstones", "events"} - set(table.column_names)
    if missing or table.num_rows == 0:
        raise InvalidInput(
            f"projection file {what} is not a run segment", details={"missing": sorted(missing)}
        )
    run_ids = table.column("run_id").to_pylist()
    if len(set(run_ids)) != len(run_ids):
        raise InvalidInput(f"projection file {what} names a run more than once", details={"runs": run_ids})
    bases = table.column("base").to_pylist()
    rows = {
        t.name: _split(table.column(t.name), functools.partial(arrow_to_rows, t))
        for t in SEGMENT_TABLES
        if t.name in table.column_names
    }
    tombs = _split(table.column("tombstones"), _pairs)
    events = _split(table.column("events"), _pairs)
    return {
        run_id: Segment(
            run_id=run_id,
            base=bases[i],
            rows={name: per_run[i] for name, per_run in rows.items()},
            tombstones=tuple(tombs[i]),
            events=dict(events[i]),
        )
        for i, run_id in enumerate(run_ids)
    }


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
        for event_id, body in seg.events.items():
            part.events[event_id] = decode_event(body)
        for table_name, key in seg.tombstones:
            if table_name == "runs":
                part.run = None
                continue
            if table_name == EVENTS:
                part.events.pop(key, None)
                continue
            for attr, table in _DICT_TABLES:
                if table.name == table_name:
                    target = getattr(part, attr)
                    target.pop(tuple(key.split("\n", 1)) if attr == "deps" else key, None)
    return part


def dropped_events(segments: Iterable[Segment]) -> set[str]:
    """The event ids the tombstones of ``segments`` remove."""
    return {key for seg in segments for table_name, key in seg.tombstones if table_name == EVENTS}


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
        # Keys are compared as sets (in C): a big run's tables and events are walked in Python only
        # when something went, and its events only to encode the new ones.
        if before.keys() - after.keys():
            tombs.extend((table.name, _dict_key(attr, key)) for key in before if key not in after)
    events = {eid: encode_event(new.events[eid]) for eid in new.events.keys() - old.events.keys()}
    if old.events.keys() - new.events.keys():
        tombs.extend((EVENTS, eid) for eid in old.events if eid not in new.events)
    return Segment(new.run_id, False, rows, tuple(tombs), events)
