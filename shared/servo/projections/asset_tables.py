"""Parquet tables of the asset catalog (automation §5): ``partition_status`` (one row per asset
partition, ``""`` when unpartitioned) and ``assets`` (one row per asset), flat columns from the
nested rows of ``servo.core.partition_status`` / ``servo.core.asset_catalog``."""

from __future__ import annotations

from dataclasses import make_dataclass
from typing import Any

from servo.core.asset_catalog import AssetRow
from servo.core.partition_status import LastAttempt, LastMaterialization, PartitionStatusRow
from servo.projections.schemas import Table, schema_of

# A row's last attempt and last materialization, flat: the same columns in both tables.
_GROUP_COLUMNS: list[tuple[str, Any]] = [
    ("attempt_event_id", str | None),
    ("attempt_run_id", str | None),
    ("attempt_task_key", str | None),
    ("attempt_attempt", int | None),
    ("attempt_at", int | None),
    ("attempt_outcome", str | None),
    ("attempt_dispatched_at", int | None),
    ("mat_event_id", str | None),
    ("mat_run_id", str | None),
    ("mat_task_key", str | None),
    ("mat_attempt", int | None),
    ("mat_at", int | None),
    ("code_version", str | None),
    ("materialization_id", str | None),
    ("row_count", int | None),
    ("output_path", str | None),
    ("delta_table", str | None),
    ("delta_version", int | None),
    ("delta_partition", str | None),
    ("execution_lineage_ref", str | None),
    ("mat_dispatched_at", int | None),
]

# One (asset, partition).
PartitionStatusRecord: Any = make_dataclass(
    "PartitionStatusRecord",
    [("asset_key", str), ("partition_key", str), *_GROUP_COLUMNS, ("row_version", str)],
    frozen=True,
    slots=True,
)
# An asset's counts, then its newest attempt and materialization over every partition (the partition
# each came from, then the same columns as a partition row's).
AssetRecord: Any = make_dataclass(
    "AssetRecord",
    [
        ("asset_key", str),
        ("materialized", int),
        ("failed", int),
        ("attempt_partition_key", str | None),
        ("mat_partition_key", str | None),
        *_GROUP_COLUMNS,
        ("row_version", str),
    ],
    frozen=True,
    slots=True,
)


PARTITION_STATUS = Table(
    "partition_status",
    PartitionStatusRecord,
    schema_of(PartitionStatusRecord),
    lambda r: r.partition_key,
)
ASSETS = Table("assets", AssetRecord, schema_of(AssetRecord), lambda r: r.asset_key)

_NO_ATTEMPT = (None,) * 7
_NO_MAT = (None,) * 14


def _attempt_fields(a: LastAttempt | None) -> tuple[object, ...]:
    if a is None:
        return _NO_ATTEMPT
    return (a.event_id, a.run_id, a.task_key, a.attempt, a.at_ms, a.outcome, a.dispatched_at_ms)


def _attempt(fields: tuple[object, ...]) -> LastAttempt | None:
    return None if fields[0] is None else LastAttempt(*fields)  # type: ignore[arg-type]


def _mat_fields(m: LastMaterialization | None) -> tuple[object, ...]:
    if m is None:
        return _NO_MAT
    return (
        m.event_id, m.run_id, m.task_key, m.attempt, m.at_ms, m.code_version, m.materialization_id,
        m.row_count, m.output_path, m.delta_table, m.delta_version, m.delta_partition,
        m.execution_lineage_ref, m.dispatched_at_ms,
    )  # fmt: skip


def _mat(fields: tuple[object, ...]) -> LastMaterialization | None:
    return None if fields[0] is None else LastMaterialization(*fields)  # type: ignore[arg-type]


def to_record(row: PartitionStatusRow) -> Any:
    fields = (
        row.asset_key,
        row.partition_key,
        *_attempt_fields(row.last_attempt),
        *_mat_fields(row.last_materialization),
        row.row_version,
    )
    return PartitionStatusRecord(*fields)


def _groups(r: Any) -> tuple[LastAttempt | None, LastMaterialization | None]:
    attempt = _attempt((r.attempt_event_id, r.attempt_run_id, r.attempt_task_key, r.attempt_attempt,
                        r.attempt_at, r.attempt_outcome, r.attempt_dispatched_at))  # fmt: skip
    mat = _mat((r.mat_event_id, r.mat_run_id, r.mat_task_key, r.mat_attempt, r.mat_at, r.code_version,
                r.materialization_id, r.row_count, r.output_path, r.delta_table, r.delta_version,
                r.delta_partition, r.execution_lineage_ref, r.mat_dispatched_at))  # fmt: skip
    return attempt, mat


def from_record(r: Any) -> PartitionStatusRow:
    return PartitionStatusRow(r.asset_key, r.partition_key, *_groups(r))


def to_asset_record(row: AssetRow) -> Any:
    la, lm = row.last_attempt, row.last_materialization
    fields = (
        row.asset_key,
        row.materialized,
        row.failed,
        la[0] if la is not None else None,
        lm[0] if lm is not None else None,
        *_attempt_fields(la[1] if la is not None else None),
        *_mat_fields(lm[1] if lm is not None else None),
        row.row_version,
    )
    return AssetRecord(*fields)


def from_asset_record(r: Any) -> AssetRow:
    attempt, mat = _groups(r)
    la = (r.attempt_partition_key or "", attempt) if attempt is not None else None
    lm = (r.mat_partition_key or "", mat) if mat is not None else None
    return AssetRow(r.asset_key, r.materialized, r.failed, lm, la)
