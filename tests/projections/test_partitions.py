"""Run segments: lossless, one file holds the segments of many runs, and a base plus deltas replays to
exactly the partition it describes."""

from __future__ import annotations

import itertools
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core.errors import InvalidInput
from servo.core.state import RunPartition
from servo.projections import schemas
from servo.projections.codec import rows_to_struct, write_parquet
from servo.projections.partitions import (
    SEGMENT_SCHEMA,
    SEGMENT_TABLES,
    Segment,
    apply_segments,
    decode_segments,
    diff_segment,
    encode_segments,
    full_segment,
)

from tests.projections.strategies import KEY, rows

RUN = "01ARZ3NDEKTSV4RRFFQ69G5FAW"
OTHER_RUNS = ("01ARZ3NDEKTSV4RRFFQ69G5FAX", "01ARZ3NDEKTSV4RRFFQ69G5FAY", "run-not-a-ulid")


def _ident(x: Any) -> Any:
    return x


@st.composite
def partitions(draw: st.DrawFn, of_run: str = RUN) -> RunPartition:
    run_id = st.just(of_run)
    part = RunPartition(run_id=of_run)
    part.run = draw(st.none() | rows(schemas.RUNS, run_id=run_id))
    for task in draw(st.lists(rows(schemas.TASKS, run_id=run_id, task_key=KEY), max_size=4)):
        part.tasks[task.task_key] = task
    for dep in draw(
        st.lists(
            rows(schemas.DEP_SATISFACTION, run_id=run_id, upstream_task_key=KEY, downstream_task_key=KEY),
            max_size=4,
        )
    ):
        part.deps[(dep.upstream_task_key, dep.downstream_task_key)] = dep
    for timer in draw(st.lists(rows(schemas.TIMERS, timer_id=KEY), max_size=2)):
        part.timers[timer.timer_id] = timer
    for row in draw(st.lists(rows(schemas.DISPATCH_OUTBOX, dispatch_id=KEY), max_size=3)):
        part.outbox[row.dispatch_id] = row
    for row in draw(st.lists(rows(schemas.IDEMPOTENCY_KEYS, idempotency_key=KEY), max_size=3)):
        part.idempotency[row.idempotency_key] = row
    for eid in draw(st.lists(KEY, max_size=4)):
        part.events[eid] = '{"e":"' + eid + '"}'
    return part


@settings(max_examples=60, deadline=None)
@given(partitions())
def test_full_segment_round_trips(part: RunPartition) -> None:
    seg = full_segment(part, _ident)
    decoded = decode_segments(encode_segments([seg]))
    assert list(decoded) == [RUN]
    assert apply_segments(RUN, [decoded[RUN]], _ident) == part


def _draw_segments(
    data: st.DataObject,
) -> tuple[list[str], dict[str, RunPartition], dict[str, RunPartition], list[Segment]]:
    """Runs, each one's partition before and after, and a base or a delta segment of each."""
    runs = data.draw(st.lists(st.sampled_from((RUN, *OTHER_RUNS)), min_size=1, max_size=4, unique=True))
    olds = {r: data.draw(partitions(r)) for r in runs}
    news = {r: data.draw(partitions(r)) for r in runs}
    for r in runs:
        news[r].events = {**olds[r].events, **news[r].events}
    segments = [
        full_segment(news[r], _ident) if data.draw(st.booleans()) else diff_segment(olds[r], news[r], _ident)
        for r in runs
    ]
    return runs, olds, news, segments


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_one_file_holds_the_segments_of_several_runs(data: st.DataObject) -> None:
    # One compaction writes one file for every run it touched: each run reads back exactly its own
    # segment, bases and deltas side by side, and the bytes do not depend on the order given.
    runs, olds, news, segments = _draw_segments(data)
    raw = encode_segments(segments)
    assert encode_segments(list(reversed(segments))) == raw
    decoded = decode_segments(raw)
    assert sorted(decoded) == sorted(runs)
    for r, seg in zip(runs, segments, strict=True):
        chain = [decoded[r]] if seg.base else [full_segment(olds[r], _ident), decoded[r]]
        assert apply_segments(r, chain, _ident) == news[r]


def test_a_file_naming_a_run_twice_is_rejected() -> None:
    seg = full_segment(RunPartition(run_id=RUN), _ident)
    with pytest.raises(InvalidInput, match="more than once"):
        encode_segments([seg, seg])
    table = pq.read_table(pa.BufferReader(encode_segments([seg])))
    with pytest.raises(InvalidInput, match="more than once"):
        decode_segments(write_parquet(pa.concat_tables([table, table])))


@settings(max_examples=60, deadline=None)
@given(st.lists(partitions(), min_size=1, max_size=4))
def test_base_plus_deltas_replays_to_the_last_version(versions: list[RunPartition]) -> None:
    # Each version keeps the previous events (a partition only ever gains events).
    for prev, cur in itertools.pairwise(versions):
        cur.events = {**prev.events, **cur.events}
    chain = [full_segment(versions[0], _ident)]
    chain += [diff_segment(a, b, _ident) for a, b in itertools.pairwise(versions)]
    decoded = [decode_segments(encode_segments([s]))[RUN] for s in chain]
    assert apply_segments(RUN, decoded, _ident) == versions[-1]


def test_unchanged_rows_are_not_rewritten() -> None:
    part = RunPartition(run_id=RUN)
    task = schemas.TASKS.row_type(
        RUN, "a", "READY", 0, None, None, None, None, 0, 0, 3, 300, None, 1, None, None
    )
    part.tasks = {"a": task, "b": task}
    new = part.copy()
    new.tasks["b"] = schemas.TASKS.row_type(
        RUN, "b", "RUNNING", 1, None, 5, None, None, 0, 0, 3, 300, None, 1, None, None
    )
    del new.tasks["a"]
    delta = diff_segment(part, new, _ident)
    assert [r.task_key for r in delta.rows["tasks"]] == ["b"]
    assert delta.tombstones == (("tasks", "a"),)
    assert diff_segment(new, new.copy(), _ident).is_empty


def test_a_file_carries_only_the_tables_its_segments_have_rows_for() -> None:
    # Each leaf column costs the Parquet writer about as much as a few rows (a run's base of a chain
    # without timers or outbox rows paid for 20 empty leaves of them): bases too leave out the tables
    # none of the file's segments has a row of, and a base still resets every table of its run.
    old = RunPartition(run_id=RUN, events={"e1": "x"})
    old.timers = {"t": schemas.TIMERS.row_type("t", None, "RETRY", RUN, "a", 1, 5, "SCHEDULED", None)}
    new = RunPartition(run_id=RUN, events={"e2": "y"})
    new.idempotency = {"k": schemas.IDEMPOTENCY_KEYS.row_type("t", "w", "k", "e2", "RunTriggered", 1, "e2")}
    other = RunPartition(run_id=OTHER_RUNS[0], events={"e3": "z"})
    raw = encode_segments([full_segment(new, _ident), diff_segment(other, other.copy(), _ident)])
    assert pq.read_schema(pa.BufferReader(raw)).names == [
        "run_id",
        "base",
        "idempotency_keys",
        "tombstones",
        "events",
    ]
    chain = [full_segment(old, _ident), decode_segments(raw)[RUN]]
    assert apply_segments(RUN, chain, _ident) == new


def test_later_base_resets_the_chain() -> None:
    a = RunPartition(run_id=RUN, events={"e1": "x"})
    b = RunPartition(run_id=RUN, events={"e2": "y"})
    assert apply_segments(RUN, [full_segment(a, _ident), full_segment(b, _ident)], _ident) == b


def test_not_a_segment_is_rejected() -> None:
    from servo.projections.codec import encode_table

    with pytest.raises(InvalidInput, match="not a run segment"):
        decode_segments(encode_table(schemas.RUNS, []))


def _reference_file(segments: list[Segment]) -> bytes:
    """A segment file built column by column from the tables' own codec (how earlier versions did)."""
    ordered = sorted(segments, key=lambda seg: seg.run_id)
    names, columns = (
        ["run_id", "base"],
        [
            pa.array([seg.run_id for seg in ordered], pa.string()),
            pa.array([seg.base for seg in ordered], pa.bool_()),
        ],
    )

    def list_column(name: str, values: pa.Array, lengths: list[int]) -> pa.Array:
        offsets = pa.array([0, *itertools.accumulate(lengths)], pa.int32())
        return pa.ListArray.from_arrays(offsets, values, type=SEGMENT_SCHEMA.field(name).type)

    for table in SEGMENT_TABLES:
        per_run = [sorted(seg.rows.get(table.name, ()), key=table.key) for seg in ordered]
        if any(per_run):
            flat = [row for run_rows in per_run for row in run_rows]
            names.append(table.name)
            columns.append(list_column(table.name, rows_to_struct(table, flat), [len(r) for r in per_run]))
    for name, pairs in (
        ("tombstones", [sorted(seg.tombstones) for seg in ordered]),
        ("events", [sorted(seg.events.items()) for seg in ordered]),
    ):
        flat_pairs = [pair for run_pairs in pairs for pair in run_pairs]
        struct_type = SEGMENT_SCHEMA.field(name).type.value_type
        values = pa.StructArray.from_arrays(
            [pa.array([p[i] for p in flat_pairs], pa.string()) for i in (0, 1)],
            fields=[struct_type.field(0), struct_type.field(1)],
        )
        names.append(name)
        columns.append(list_column(name, values, [len(p) for p in pairs]))
    schema = pa.schema([SEGMENT_SCHEMA.field(n) for n in names])
    return write_parquet(pa.Table.from_arrays(columns, schema=schema))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_segment_files_keep_their_bytes(data: st.DataObject) -> None:
    # Files are named by their content: the same segments must give the same bytes in every version,
    # or a retry by another version's compactor writes a second file for one publish.
    segments = _draw_segments(data)[3]
    assert encode_segments(segments) == _reference_file(segments)
