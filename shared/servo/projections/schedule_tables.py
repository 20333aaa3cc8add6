"""Parquet tables of the schedule projection (automation §5): ``schedules``, ``schedule_ticks``,
``run_requests``, ``backfills``, ``backfill_chunks``, one file each per published head, rows from
``servo.core.schedule_fold`` and ``servo.core.backfill_fold``."""

from __future__ import annotations

from servo.core.backfill_fold import BackfillChunkRow, BackfillRow
from servo.core.schedule_fold import RunRequestRow, ScheduleRow, ScheduleTickRow
from servo.projections.schemas import Table, schema_of

SCHEDULES = Table("schedules", ScheduleRow, schema_of(ScheduleRow), lambda r: r.schedule_id)
SCHEDULE_TICKS = Table("schedule_ticks", ScheduleTickRow, schema_of(ScheduleTickRow), lambda r: r.tick_id)
RUN_REQUESTS = Table("run_requests", RunRequestRow, schema_of(RunRequestRow), lambda r: r.request_id)

BACKFILLS = Table("backfills", BackfillRow, schema_of(BackfillRow), lambda r: r.backfill_id)
BACKFILL_CHUNKS = Table(
    "backfill_chunks", BackfillChunkRow, schema_of(BackfillChunkRow), lambda r: r.chunk_id
)

# Each table with the ScheduleState attribute holding its rows.
SCHEDULE_TABLES: tuple[tuple[Table, str], ...] = (
    (SCHEDULES, "schedules"),
    (SCHEDULE_TICKS, "ticks"),
    (RUN_REQUESTS, "requests"),
    (BACKFILLS, "backfills"),
    (BACKFILL_CHUNKS, "chunks"),
)
