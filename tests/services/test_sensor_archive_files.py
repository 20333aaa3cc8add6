"""The sensor projection's finished rows (``sensor_archived_*``) as immutable delta files: a publish
writes the rows it let go, not the 30 days of finished rows (issue 19)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core.canonical_json import canonical_bytes
from servo.core.events import Event
from servo.core.sensor_rows import SensorRunItemRow, SensorTables, archive_key, table_rows
from servo.projections.codec import content_hex12, encode_table
from servo.services._compaction_ledger import ulid_floor
from servo.services.context import ServiceContext
from servo.services.ledger import append_events
from servo.services.sensor_projection import PROJECTION, cut_sensors, refresh_sensors
from servo.store import create_once
from servo.store.counting import CountingStore

from tests.services.compaction_support import Crash, CrashingStore
from tests.services.test_sensor_retention import DAY, POLL, T0, Ledger, _define, _histories, _poll
from tests.support.context import FakeClock, make_context

INTERVAL_MS = 30_000
QUARTER_MS = 900_000


def _history(ledger: Ledger, days: int) -> tuple[SensorTables, list[Event], int, int]:
    """A 30 s poll sensor's projection after ``days`` (refreshed daily), with the last event, the
    next version and instant."""
    events, version, at = [_define(ledger, POLL)], 0, T0 + INTERVAL_MS
    state, last = SensorTables(), events
    for day in range(1, days + 1):
        batch = []
        while at < T0 + day * DAY:
            batch += _poll(ledger, version, at, triggered=version % 10 == 0)
            version, at = version + 1, at + INTERVAL_MS
        state = PROJECTION.fold(state, [*events, *batch] if day == 1 else batch, T0 + day * DAY)
        last = batch
    return state, last, version, at


def _seed_single_files(tmp_path: Path, state: SensorTables, watermark: str) -> None:
    """The projection as published before delta files: one file per table under the head."""
    ctx = make_context(tmp_path)[0]
    store = ctx.workspace_store("t", "w")
    rows, files = table_rows(state), {}
    for table in PROJECTION.tables:
        data = encode_table(table, rows[table.name])
        files[table.name] = f"automation/sensors/{table.name}/{content_hex12(data)}.parquet"
        create_once(store, files[table.name], data)
    body = {"watermark": watermark, "recent": [], "files": files}
    store.put(PROJECTION.head_path, canonical_bytes(body), if_generation_match=0)


@dataclass(frozen=True, slots=True)
class Published:
    written: int  # bytes written through the store
    cpu_s: float
    live: SensorTables


def quarter_publishes(root: Path, days: int, count: int) -> Iterator[Published]:
    """``count`` quarter-hourly publishes (30 polls each, through ``refresh_sensors``) after ``days``
    of history, the first one converting a projection written before delta files."""
    ledger = Ledger()
    state, last, version, at = _history(ledger, days)
    _seed_single_files(root, state, last[-1].event_id)
    clock = FakeClock(at)
    ctx = make_context(root, clock=clock, compact=False)[0]
    counting = CountingStore(ctx.store)
    ctx = replace(ctx, store=counting)
    for _ in range(count):
        batch = []
        while at < clock.now_ms + QUARTER_MS:
            batch += _poll(ledger, version, at, triggered=version % 10 == 0)
            version, at = version + 1, at + INTERVAL_MS
        clock.now_ms = at
        names = append_events(ctx, "t", "w", batch)
        counting.reset()
        start = time.process_time()
        live = refresh_sensors(ctx, "t", "w", names)
        yield Published(counting.snapshot().bytes_written, time.process_time() - start, live)


def _publish_bytes(root: Path, days: int) -> list[int]:
    written = []
    for published in quarter_publishes(root, days, 3):
        written.append(published.written)
        fresh = make_context(root, compact=False)[0]
        assert table_rows(PROJECTION.load(fresh, "t", "w")) == table_rows(published.live)  # as published
    return written


def test_a_publish_writes_bytes_independent_of_the_days_of_finished_rows(tmp_path: Path) -> None:
    short = _publish_bytes(tmp_path / "2", 2)
    long = _publish_bytes(tmp_path / "20", 20)
    # A quarter hour's publish writes its own rows, the first one too (it converts the single files
    # without rewriting them): 20 days cost what 2 days do. 20 days of finished rows are 6.6 MB.
    assert all(b < a * 1.2 for a, b in zip(short, long, strict=True)), (short, long)
    assert max(long) < 300_000, long


def _publish(ctx: ServiceContext, state: SensorTables) -> None:
    store = ctx.workspace_store("t", "w")
    head = PROJECTION.load_head(store)
    PROJECTION.publish(ctx, store, head, PROJECTION.read(ctx, store, head), state, head.watermark, ())


@st.composite
def _polls(draw: st.DrawFn) -> list[Event]:
    """A poll sensor's polls at random gaps (up to about 100 days): finished rows come at most cuts
    and go 30 days later, so delta files are added, merged and dropped."""
    ledger = Ledger()
    ledger.n = 1_000_000  # ids apart from ``_histories``' own ledger's
    events, at = [_define(ledger, POLL)], T0
    for version in range(draw(st.integers(10, 40))):
        at += draw(st.sampled_from([60_000, 3_600_000, 14_400_000, DAY, 3 * DAY]))
        events += _poll(ledger, version, at, triggered=draw(st.booleans()))
    return events


@settings(max_examples=100, deadline=None)
@given(history=_histories(), polls=_polls(), data=st.data())
def test_the_published_delta_files_read_back_as_live_at_every_refresh(
    history: tuple[list[Event], list[SensorRunItemRow]], polls: list[Event], data: st.DataObject
) -> None:
    pushed, runs = history
    events = [*pushed, *polls]
    # Refreshes a quarter hour to ten days apart: finished rows come, merge and expire among them.
    gaps = st.sampled_from([QUARTER_MS, 3_600_000, 21_600_000, DAY, 5 * DAY, 10 * DAY])
    refreshes = list(accumulate(data.draw(st.lists(gaps, min_size=3, max_size=20))))
    with tempfile.TemporaryDirectory() as root:
        ctx = make_context(Path(root))[0]
        live = SensorTables()
        for offset in refreshes:
            now = T0 + offset
            found = [r for r in runs if r.arrived_id <= ulid_floor(now)]
            batch = [e for e in events if e.timestamp_ms <= now]
            live = cut_sensors(live.with_events(batch).with_run_items(found), now)
            _publish(ctx, live)
            fresh = make_context(Path(root))[0]  # another instance, nothing decoded yet
            assert table_rows(PROJECTION.load(fresh, "t", "w")) == table_rows(live)
            assert table_rows(PROJECTION.load(ctx, "t", "w")) == table_rows(live)


def test_finished_rows_past_30_days_leave_reads_at_the_boundary_and_storage_within_twice_the_kept(
    tmp_path: Path,
) -> None:
    ledger = Ledger()
    ctx = make_context(tmp_path)[0]
    store = ctx.workspace_store("t", "w")
    live, version, at = SensorTables().with_events([_define(ledger, POLL)]), 0, T0 + 300_000
    for day in range(1, 46):  # a poll every 5 minutes, published daily
        batch = []
        while at < T0 + day * DAY:
            batch += _poll(ledger, version, at, triggered=version % 10 == 0)
            version, at = version + 1, at + 300_000
        live = cut_sensors(live.with_events(batch), T0 + day * DAY)
        _publish(ctx, live)
        files = PROJECTION.load_head(store).deltas["sensor_archived_evaluations"].files
        # About log2(days published) files; rows past the boundary are read no more at once, and leave
        # storage with their whole file or when a merge rewrites them.
        assert len(files) <= 6 and sum(f.rows for f in files) <= 2 * len(live.archived), (day, files)
        assert table_rows(PROJECTION.load(make_context(tmp_path)[0], "t", "w")) == table_rows(live)
    assert min(r.row_version for r in live.archived.values()) >= ulid_floor(T0 + 15 * DAY - 900_000)
    # A sensor that stopped: once its last rows are past 30 days its files all go.
    _publish(ctx, cut_sensors(live, T0 + 80 * DAY))
    assert PROJECTION.load_head(store).deltas["sensor_archived_evaluations"].files == ()


def test_a_crash_at_any_write_of_a_publish_of_delta_files_converges_to_the_same_tables(
    tmp_path: Path,
) -> None:
    ledger = Ledger()
    state, last, version, at = _history(ledger, 2)
    template = tmp_path / "template"
    _seed_single_files(template, state, last[-1].event_id)
    clock = FakeClock(at)
    names = []
    for n in range(2):  # the converting publish, then one whose delta file absorbs the last one's
        batch = []
        while at < clock.now_ms + QUARTER_MS:
            batch += _poll(ledger, version, at, triggered=version % 10 == 0)
            version, at = version + 1, at + INTERVAL_MS
        clock.now_ms = at
        ctx = make_context(template, clock=clock, compact=False)[0]
        names = append_events(ctx, "t", "w", batch)
        if n == 0:
            refresh_sensors(ctx, "t", "w", names)

    def world(name: str, crash_at: int | None) -> tuple[ServiceContext, CrashingStore]:
        shutil.copytree(template, tmp_path / name)
        ctx = make_context(tmp_path / name, clock=clock, compact=False)[0]
        crashing = CrashingStore(ctx.store, crash_at)
        return replace(ctx, store=crashing), crashing

    clean, counted = world("clean", None)
    expected = table_rows(refresh_sensors(clean, "t", "w", names))
    assert counted.writes >= 7  # the tables that changed, the delta file, the head
    for nth in range(1, counted.writes + 1):
        ctx, crashing = world(f"crash-{nth}", nth)
        with contextlib.suppress(Crash):
            refresh_sensors(ctx, "t", "w", names)
        crashing.crash_at = None
        again = make_context(tmp_path / f"crash-{nth}", clock=clock, compact=False)[0]
        assert table_rows(refresh_sensors(again, "t", "w", names)) == expected, nth
        assert table_rows(PROJECTION.load(again, "t", "w")) == expected, nth


def test_rows_that_do_not_go_by_age_rewrite_the_table_as_one_file_that_reads_back(tmp_path: Path) -> None:
    state = _history(Ledger(), 1)[0]
    ctx = make_context(tmp_path)[0]
    store = ctx.workspace_store("t", "w")
    _publish(ctx, state)
    by_age = sorted(state.archived.values(), key=lambda r: r.row_version)
    older = replace(by_age[0], evaluation_id="files:v9999:1", row_version=ulid_floor(T0 - DAY) + "0" * 16)
    changes = [
        {**state.archived, archive_key(older): older},  # older than the oldest published row
        {archive_key(r): r for r in by_age[:-1]},  # the newest row gone, not by age
    ]
    for archived in changes:  # a delta file would hold the older row; the newest would read back
        changed = replace(state, archived=archived)
        _publish(ctx, changed)
        assert len(PROJECTION.load_head(store).deltas["sensor_archived_evaluations"].files) == 1
        assert table_rows(PROJECTION.load(make_context(tmp_path)[0], "t", "w")) == table_rows(changed)
