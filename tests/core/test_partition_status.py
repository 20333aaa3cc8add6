"""Partition status and lineage (automation §6.5; L1-L3, L4 summary): an order-insensitive fold."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from servo.core.partition_status import (
    AttemptCompletion,
    PartitionStatusRow,
    definition_size,
    execution_lineage_ref,
    fold_partition_status,
    partition_state,
    partition_summary,
)

PK = "date=d:2025-01-15"
DAILY = {"name": "date", "kind": "time", "granularity": "day", "start": "2025-01-01"}
REGION = {"name": "region", "kind": "static", "values": ["eu", "us"]}
NOW = int(datetime(2025, 1, 10, 8, tzinfo=UTC).timestamp() * 1000)


def _done(
    event_id: str, outcome: str, *, run: str = "run_1", attempt: int = 1, **kw: Any
) -> AttemptCompletion:
    return AttemptCompletion(
        event_id=event_id,
        at_ms=int(event_id[-3:]) * 1000,
        asset_key="sales.daily",
        partition_key=kw.pop("partition_key", PK),
        run_id=run,
        task_key="sales.daily",
        attempt=attempt,
        outcome=outcome,
        **kw,
    )


def _row(*completions: AttemptCompletion) -> PartitionStatusRow:
    rows = fold_partition_status({}, completions)
    return rows[("sales.daily", PK)]


def test_l1_success_has_one_lineage_ref_naming_the_attempt_and_output() -> None:
    output = {
        "materializationId": "m1",
        "rowCount": 10,
        "deltaTable": "sales",
        "deltaVersion": 42,
        "deltaPartition": "date=2025-01-15",
    }
    row = _row(_done("e001", "succeeded", code_version="f1", output=output))
    mat = row.last_materialization
    assert mat is not None
    assert json.loads(mat.execution_lineage_ref) == {
        "runId": "run_1",
        "taskKey": "sales.daily",
        "attempt": 1,
        "materializationId": "m1",
        "deltaTable": "sales",
        "deltaVersion": 42,
        "deltaPartition": "date=2025-01-15",
    }
    # the same string a task row gets from the same reported values
    assert mat.execution_lineage_ref == execution_lineage_ref("run_1", "sales.daily", 1, None, output)
    assert (mat.delta_version, mat.row_count, mat.code_version) == (42, 10, "f1")
    assert row.last_attempt is not None and row.last_attempt.outcome == "SUCCEEDED"
    assert partition_state(row, stale=False) == "MATERIALIZED"


def test_l2_failure_after_success_keeps_the_materialization() -> None:
    row = _row(
        _done("e001", "succeeded", output={"materializationId": "m1"}), _done("e002", "failed", run="run_2")
    )
    assert row.last_attempt is not None and (row.last_attempt.outcome, row.last_attempt.run_id) == (
        "FAILED",
        "run_2",
    )
    assert row.last_materialization is not None and row.last_materialization.run_id == "run_1"
    assert partition_state(row, stale=True) == "MATERIALIZED_BUT_LAST_ATTEMPT_FAILED"
    assert row.row_version == "e002"


def test_l3_skipped_task_changes_nothing() -> None:
    assert fold_partition_status({}, [_done("e001", "skipped")]) == {}
    before = _row(_done("e001", "succeeded"))
    after = fold_partition_status({("sales.daily", PK): before}, [_done("e009", "skipped")])
    assert after[("sales.daily", PK)] == before


def test_status_precedence() -> None:
    assert partition_state(None, stale=True) == "NEVER_MATERIALIZED"
    assert partition_state(_row(_done("e001", "failed")), stale=False) == "NEVER_MATERIALIZED"
    ok = _row(_done("e001", "succeeded"))
    assert partition_state(ok, stale=True) == "STALE"
    retried = _row(_done("e001", "failed"), _done("e002", "succeeded", attempt=2))
    assert partition_state(retried, stale=False) == "MATERIALIZED"
    cancelled = _row(_done("e001", "succeeded"), _done("e002", "cancelled", run="run_2"))
    assert partition_state(cancelled, stale=False) == "MATERIALIZED"


def test_l4_summary_over_the_definition() -> None:
    rows = fold_partition_status(
        {},
        [
            _done("e001", "succeeded", partition_key="date=d:2025-01-01"),
            _done("e002", "succeeded", partition_key="date=d:2025-01-02"),
            _done("e003", "failed", partition_key="date=d:2025-01-02"),
            _done("e004", "failed", partition_key="date=d:2025-01-03"),
        ],
    ).values()
    summary = partition_summary([DAILY], rows, frozenset({"date=d:2025-01-01"}), now_ms=NOW)
    assert summary == {"total": 10, "materialized": 2, "failed": 2, "missing": 8, "stale": 1}
    unbounded = partition_summary([{**DAILY, "start": None}], rows, frozenset(), now_ms=NOW)
    assert unbounded["total"] is None and unbounded["missing"] is None


def test_definition_size_counts_every_dimension() -> None:
    assert definition_size([], NOW) == 1
    assert definition_size([DAILY, REGION], NOW) == 20
    hourly = {"name": "hour", "kind": "time", "granularity": "hour", "start": "2025-01-10T00:00:00.000000Z"}
    assert definition_size([hourly], NOW) == 9
    assert definition_size([{**DAILY, "start": "2025-02-01"}], NOW) == 0


_completions = st.lists(
    st.builds(
        _done,
        st.integers(0, 999).map(lambda n: f"e{n:03d}"),
        st.sampled_from(["succeeded", "failed", "skipped", "cancelled"]),
        run=st.sampled_from(["run_1", "run_2"]),
        attempt=st.integers(1, 3),
        partition_key=st.sampled_from([PK, "date=d:2025-01-16"]),
    ),
    max_size=30,
    unique_by=lambda c: c.event_id,
)


@given(_completions, st.randoms(use_true_random=False), st.integers(0, 30))
def test_fold_is_order_duplicate_and_batch_insensitive(
    completions: list[AttemptCompletion], rnd: Any, cut: int
) -> None:
    expected = fold_partition_status({}, completions)
    shuffled = [*completions, *completions[: len(completions) // 2]]
    rnd.shuffle(shuffled)
    batched = fold_partition_status(fold_partition_status({}, shuffled[:cut]), shuffled[cut:])
    assert batched == expected
    for row in expected.values():
        succeeded = [
            c for c in completions if (c.partition_key == row.partition_key and c.outcome == "succeeded")
        ]
        if succeeded:
            assert row.last_materialization is not None
            assert row.last_materialization.event_id == max(c.event_id for c in succeeded)
