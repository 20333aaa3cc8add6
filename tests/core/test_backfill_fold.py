"""The backfill fold: any order, duplication or batching of one event set gives one set of rows; moves
go through the compare-and-set (B6, B7); chunks settle from their requests and runs (B9)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core.backfill_fold import chunk_requests, fold_backfills, settle_chunks
from servo.core.backfills import chunk_run_requests
from servo.core.events import (
    BackfillChunkPlanned,
    BackfillCreated,
    BackfillStateChanged,
    Event,
    decode_event,
    encode_event,
    make_event,
)
from servo.core.ids import UlidFactory

BF = "bf_abcdefghijklmnopqrstuvwxyz"
T0 = 1_736_935_200_000
KEYS = tuple(f"date=d:2025-01-0{d}" for d in range(1, 6))


class Ids:
    def __init__(self) -> None:
        self.factory = UlidFactory(lambda n: bytes(n))
        self.now = T0

    def event(self, data: Any) -> Event:
        self.now += 1000
        event = make_event(
            data,
            event_id=self.factory.new(self.now),
            timestamp_ms=self.now,
            tenant_id="acme",
            workspace_id="prod",
        )
        return decode_event(encode_event(event))


def planned(index: int, keys: tuple[str, ...]) -> BackfillChunkPlanned:
    requests = {r.request_id: r.run_key for r in chunk_run_requests(BF, index, keys, ["raw.a"], {})}
    return BackfillChunkPlanned(BF, index, keys, requests)


def history() -> list[Event]:
    ids = Ids()
    return [
        ids.event(BackfillCreated(BF, ("raw.a",), {"explicit": list(KEYS)}, KEYS, 2, 4)),
        ids.event(planned(0, KEYS[:2])),
        ids.event(BackfillStateChanged(BF, "PENDING", "RUNNING", 2)),
        ids.event(planned(1, KEYS[2:4])),
        ids.event(planned(1, KEYS[2:4])),  # a duplicated planner: same key, a later event id
        ids.event(BackfillStateChanged(BF, "RUNNING", "PAUSED", 3, reason="ops")),
        ids.event(BackfillStateChanged(BF, "RUNNING", "PAUSED", 3, reason="ops")),  # a repeated request
        ids.event(BackfillStateChanged(BF, "RUNNING", "CANCELLED", 3)),  # raced the pause: loses
        ids.event(BackfillStateChanged(BF, "PAUSED", "RUNNING", 4)),
    ]


def test_the_rows_follow_creation_planning_and_the_applied_moves() -> None:
    rows, chunks = fold_backfills(history())
    row = rows[BF]
    assert (row.state, row.state_version, row.total_partitions, row.chunk_count) == ("RUNNING", 4, 5, 3)
    moves = [(m["from"], m["to"], m["stateVersion"], m["applied"]) for m in row.transitions()]
    assert moves == [
        ("PENDING", "RUNNING", 2, True),
        ("RUNNING", "PAUSED", 3, True),  # the duplicate is one move, applied once
        ("RUNNING", "CANCELLED", 3, False),
        ("PAUSED", "RUNNING", 4, True),
    ]
    assert [
        (c.chunk_index, c.planned, c.keys()) for c in sorted(chunks.values(), key=lambda c: c.chunk_index)
    ] == [
        (0, True, list(KEYS[:2])),
        (1, True, list(KEYS[2:4])),
        (2, False, list(KEYS[4:])),
    ]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_order_duplication_or_batching_gives_the_same_rows(data: st.DataObject) -> None:
    events = history()
    once = fold_backfills(events)
    shuffled = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=4))))
    cut = data.draw(st.integers(0, len(shuffled)))
    first = fold_backfills(shuffled[:cut])
    assert fold_backfills(shuffled[cut:], *first) == once


def test_chunks_settle_from_their_requests_and_runs() -> None:
    rows, chunks = fold_backfills(history())
    first, second = chunks[f"{BF}:0"], chunks[f"{BF}:1"]
    (r0, _, _), (r1, _, _) = chunk_requests(first)
    (r2, _, _), (r3, _, _) = chunk_requests(second)
    requests = {
        r0: ("CREATED", "run0"),
        r1: ("EXISTING", "run1"),
        r2: ("REJECTED", None),
        r3: ("CREATED", "run3"),
    }
    runs = {"run0": "SUCCEEDED", "run1": "SUCCEEDED", "run3": "RUNNING"}
    settled = settle_chunks(rows, chunks, requests.get, runs.get)
    assert settled[f"{BF}:0"].state == "SUCCEEDED"
    assert settled[f"{BF}:1"].state == "RUNNING"
    assert settled[f"{BF}:2"].state == "PENDING"
    runs["run3"] = "SUCCEEDED"
    again = settle_chunks(rows, settled, requests.get, runs.get)
    assert again[f"{BF}:1"].state == "FAILED"  # a REJECTED request is a failed partition
    assert again[f"{BF}:1"].outcomes == '["FAILED","SUCCEEDED"]'
    runs["run0"] = "FAILED"  # a terminal chunk keeps its state
    assert settle_chunks(rows, again, requests.get, runs.get)[f"{BF}:0"].state == "SUCCEEDED"


def test_an_unplanned_chunk_of_a_cancelled_backfill_is_cancelled() -> None:
    ids = Ids()
    rows, chunks = fold_backfills(
        [
            ids.event(BackfillCreated(BF, ("raw.a",), {"explicit": list(KEYS)}, KEYS, 5, 5)),
            ids.event(BackfillStateChanged(BF, "PENDING", "CANCELLED", 2)),
        ]
    )
    assert rows[BF].state == "CANCELLED"
    assert settle_chunks(rows, chunks, {}.get, {}.get)[f"{BF}:0"].state == "CANCELLED"
