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
from servo.projections.codec import write_parquet
from servo.projections.partitions import (
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


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_one_file_holds_the_segments_of_several_runs(data: st.DataObject) -> None:
    # One compaction writes one file for every run it touched: each run reads back exactly its own
    # segment, bases and deltas side by side, and the bytes do not depend on the order given.
    runs = data.draw(st.lists(st.sampled_from((RUN, *OTHER_RUNS)), min_size=1, max_size=4, unique=True))
    olds = {r: data.draw(partitions(r)) for r in runs}
    news = {r: data.draw(partitions(r)) for r in runs}
    for r in runs:
        news[r].events = {**olds[r].events, **news[r].events}
    segments = [
        full_segment(news[r], _ident) if data.draw(st.booleans()) else diff_segment(olds[r], news[r], _ident)
        for r in runs
    ]
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


def test_later_base_resets_the_chain() -> None:
    a = RunPartition(run_id=RUN, events={"e1": "x"})
    b = RunPartition(run_id=RUN, events={"e2": "y"})
    assert apply_segments(RUN, [full_segment(a, _ident), full_segment(b, _ident)], _ident) == b


def test_not_a_segment_is_rejected() -> None:
    from servo.projections.codec import encode_table

    with pytest.raises(InvalidInput, match="not a run segment"):
        decode_segments(encode_table(schemas.RUNS, []))
