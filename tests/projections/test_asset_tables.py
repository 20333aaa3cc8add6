"""The catalog's Parquet tables read files written before a column was added (automation §5)."""

from __future__ import annotations

from dataclasses import replace

from servo.core.partition_status import AttemptCompletion, fold_partition_status
from servo.projections.asset_tables import PARTITION_STATUS, from_record, to_record
from servo.projections.codec import decode_table, rows_to_arrow, write_parquet

_DISPATCH_COLUMNS = ("attempt_dispatched_at", "mat_dispatched_at")


def test_a_partition_file_without_the_dispatch_columns_reads_as_groups_without_a_dispatch_time() -> None:
    done = AttemptCompletion("e001", 1_000, "ns.a", "p1", "r1", "ns.a", 1, "succeeded", dispatched_at_ms=900)
    [row] = fold_partition_status({}, [done]).values()
    table = rows_to_arrow(PARTITION_STATUS, [to_record(row)])
    assert from_record(decode_table(PARTITION_STATUS, write_parquet(table))[0]) == row
    older = table.drop_columns(list(_DISPATCH_COLUMNS))
    [read] = decode_table(PARTITION_STATUS, write_parquet(older))
    assert row.last_attempt is not None and row.last_materialization is not None
    assert from_record(read) == replace(
        row,
        last_attempt=replace(row.last_attempt, dispatched_at_ms=None),
        last_materialization=replace(row.last_materialization, dispatched_at_ms=None),
    )
