"""The sensor projection's finished rows (``sensor_archived_*``) as immutable delta files: a publish
writes the rows it let go, not the 30 days of finished rows (issue 19)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from servo.core.canonical_json import canonical_bytes
from servo.core.events import Event
from servo.core.sensor_rows import SensorTables, table_rows
from servo.projections.codec import content_hex12, encode_table
from servo.services.ledger import append_events
from servo.services.sensor_projection import PROJECTION, refresh_sensors
from servo.store import create_once
from servo.store.counting import CountingStore

from tests.services.test_sensor_retention import DAY, POLL, T0, Ledger, _define, _poll
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


def _publish_bytes(tmp_path: Path, days: int) -> list[int]:
    """Bytes each of three quarter-hourly publishes writes after ``days`` of history, the first one
    converting a projection written before delta files."""
    ledger = Ledger()
    state, last, version, at = _history(ledger, days)
    _seed_single_files(tmp_path, state, last[-1].event_id)
    clock = FakeClock(at)
    ctx, _clock, _queue = make_context(tmp_path, clock=clock, compact=False)
    counting = CountingStore(ctx.store)
    ctx = replace(ctx, store=counting)
    written = []
    for _ in range(3):
        batch = []
        while at < clock.now_ms + QUARTER_MS:
            batch += _poll(ledger, version, at, triggered=version % 10 == 0)
            version, at = version + 1, at + INTERVAL_MS
        clock.now_ms = at
        names = append_events(ctx, "t", "w", batch)
        counting.reset()
        live = refresh_sensors(ctx, "t", "w", names)
        written.append(counting.snapshot().bytes_written)
        fresh = make_context(tmp_path, clock=clock, compact=False)[0]
        assert table_rows(PROJECTION.load(fresh, "t", "w")) == table_rows(live)  # reads back as published
    return written


def test_a_publish_writes_bytes_independent_of_the_days_of_finished_rows(tmp_path: Path) -> None:
    short = _publish_bytes(tmp_path / "2", 2)
    long = _publish_bytes(tmp_path / "20", 20)
    # A quarter hour's publish writes its own rows, the first one too (it converts the single files
    # without rewriting them): 20 days cost what 2 days do. 20 days of finished rows are 6.6 MB.
    assert all(b < a * 1.2 for a, b in zip(short, long, strict=True)), (short, long)
    assert max(long) < 300_000, long

