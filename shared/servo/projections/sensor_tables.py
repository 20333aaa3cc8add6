"""Parquet tables of the sensor projection (automation §5): ``sensors``, ``sensor_evaluations``,
``sensor_inbox`` (derived from the fold's view), and what they derive from: ``sensor_checkpoints`` (the
settled start of each chain), ``sensor_events`` after it and the run-status items ``sensor_run_items``.
Sensor run requests' outcomes go to the schedules' ``run_requests``.
"""

from __future__ import annotations

from servo.core.sensor_rows import (
    SensorCheckpointRow,
    SensorEvaluationRow,
    SensorEventRow,
    SensorInboxRow,
    SensorRow,
    SensorRunItemRow,
    archive_key,
)
from servo.projections.schemas import Table, schema_of

SENSOR_EVENTS = Table("sensor_events", SensorEventRow, schema_of(SensorEventRow), lambda r: r.event_id)
SENSOR_RUN_ITEMS = Table(
    "sensor_run_items", SensorRunItemRow, schema_of(SensorRunItemRow), lambda r: f"{r.sensor_id}\n{r.item_id}"
)
SENSOR_CHECKPOINTS = Table(
    "sensor_checkpoints", SensorCheckpointRow, schema_of(SensorCheckpointRow), lambda r: r.sensor_id
)
SENSORS = Table("sensors", SensorRow, schema_of(SensorRow), lambda r: r.sensor_id)
SENSOR_EVALUATIONS = Table(
    "sensor_evaluations", SensorEvaluationRow, schema_of(SensorEvaluationRow), lambda r: r.evaluation_id
)
SENSOR_INBOX = Table(
    "sensor_inbox", SensorInboxRow, schema_of(SensorInboxRow), lambda r: f"{r.sensor_id}\n{r.item_id}"
)

# What the checkpoints let go of within the retention (an evaluation's request and result apart).
SENSOR_ARCHIVED_EVALUATIONS = Table(
    "sensor_archived_evaluations", SensorEvaluationRow, schema_of(SensorEvaluationRow), archive_key
)
SENSOR_ARCHIVED_INBOX = Table(
    "sensor_archived_inbox",
    SensorInboxRow,
    schema_of(SensorInboxRow),
    lambda r: f"{r.sensor_id}\n{r.item_id}",
)

SENSOR_TABLES: tuple[Table, ...] = (
    SENSOR_EVENTS,
    SENSOR_RUN_ITEMS,
    SENSOR_CHECKPOINTS,
    SENSORS,
    SENSOR_EVALUATIONS,
    SENSOR_INBOX,
    SENSOR_ARCHIVED_EVALUATIONS,
    SENSOR_ARCHIVED_INBOX,
)
# The tables the projection's state is read back from (in ``SensorTables.from_rows``' order); the
# others derive from them.
SENSOR_STORED_TABLES: tuple[Table, ...] = (
    SENSOR_EVENTS,
    SENSOR_RUN_ITEMS,
    SENSOR_CHECKPOINTS,
    SENSOR_ARCHIVED_EVALUATIONS,
    SENSOR_ARCHIVED_INBOX,
)
