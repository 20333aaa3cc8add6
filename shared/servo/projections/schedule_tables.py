"""Parquet tables of the schedule projection (automation §5): ``schedules``, ``schedule_ticks``,
``run_requests``, one file each per published head, rows from ``servo.core.schedule_fold``."""

from __future__ import annotations

from servo.core.schedule_fold import RunRequestRow, ScheduleRow, ScheduleTickRow
from servo.projections.schemas import Table, schema_of

SCHEDULES = Table("schedules", ScheduleRow, schema_of(ScheduleRow), lambda r: r.schedule_id)
SCHEDULE_TICKS = Table("schedule_ticks", ScheduleTickRow, schema_of(ScheduleTickRow), lambda r: r.tick_id)
RUN_REQUESTS = Table("run_requests", RunRequestRow, schema_of(RunRequestRow), lambda r: r.request_id)

SCHEDULE_TABLES: tuple[Table, ...] = (SCHEDULES, SCHEDULE_TICKS, RUN_REQUESTS)
