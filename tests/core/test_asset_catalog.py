"""The catalog fold: changed partition rows only, ``assets`` rows kept by difference, one completion
per attempt (automation §6.5, §6.8; L2, L3)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from servo.core.asset_catalog import AssetRow, completions_of, fold_catalog, summarize
from servo.core.events import TaskFinished, TaskStarted, make_event
from servo.core.partition_status import AttemptCompletion, PartitionStatusRow, fold_partition_status


def _done(eid: str, outcome: str, *, pk: str = "p1", run: str = "r1", attempt: int = 1) -> AttemptCompletion:
    return AttemptCompletion(eid, int(eid[1:]), "ns.a", pk, run, "ns.a", attempt, outcome)


def _fold(
    rows: dict[tuple[str, str], PartitionStatusRow], assets: dict[str, AssetRow], *cs: AttemptCompletion
) -> tuple[dict[tuple[str, str], PartitionStatusRow], dict[str, AssetRow]]:
    changed, assets = fold_catalog(rows.get, assets, cs)
    return {**rows, **changed}, assets


def test_completions_come_from_asset_task_finishes_only() -> None:
    def ev(eid: str, data: Any) -> Any:
        return make_event(data, event_id=eid, timestamp_ms=5, tenant_id="t", workspace_id="w")

    finished = TaskFinished("r1", "ns.a", 1, "a1", "w", "succeeded", asset_key="ns.a", code_version="f1")
    events = [
        ev("01JAAAAAAAAAAAAAAAAAAAAAA1", finished),
        ev("01JAAAAAAAAAAAAAAAAAAAAAA2", TaskFinished("r1", "x", 1, "a1", "w", "failed")),
        ev("01JAAAAAAAAAAAAAAAAAAAAAA3", TaskStarted("r1", "ns.a", 1, "a1", "w")),
    ]
    [c] = completions_of(events)
    assert (c.asset_key, c.partition_key, c.code_version, c.at_ms) == ("ns.a", "", "f1", 5)


def test_only_touched_rows_are_returned_and_assets_count_by_difference() -> None:
    rows, assets = _fold({}, {}, _done("e001", "succeeded"), _done("e002", "failed", pk="p2", run="r2"))
    assert assets["ns.a"].materialized == 1 and assets["ns.a"].failed == 1
    changed, after = fold_catalog(
        rows.get, assets, [_done("e003", "succeeded", pk="p2", run="r2", attempt=2)]
    )
    assert list(changed) == [("ns.a", "p2")]
    assert (after["ns.a"].materialized, after["ns.a"].failed) == (2, 0)
    assert after["ns.a"].last_materialization is not None
    assert after["ns.a"].last_materialization[0] == "p2"


def test_l2_a_failed_retry_keeps_the_success_and_counts_as_failed() -> None:
    rows, assets = _fold({}, {}, _done("e001", "succeeded"))
    rows, assets = _fold(rows, assets, _done("e002", "failed", run="r2"))
    row = rows[("ns.a", "p1")]
    assert row.last_materialization is not None and row.last_materialization.run_id == "r1"
    assert row.last_attempt is not None and row.last_attempt.outcome == "FAILED"
    assert (assets["ns.a"].materialized, assets["ns.a"].failed) == (1, 1)


def test_l3_a_skip_changes_nothing() -> None:
    rows, assets = _fold({}, {}, _done("e001", "succeeded"))
    changed, after = fold_catalog(rows.get, assets, [_done("e002", "skipped", run="r2")])
    assert changed == {} and after == assets


def test_a_second_completion_of_one_attempt_changes_nothing() -> None:
    """A redelivered callback or the sweep's forced end racing the worker: the first one counts."""
    rows, assets = _fold({}, {}, _done("e001", "succeeded"))
    changed, after = fold_catalog(rows.get, assets, [_done("e005", "failed")])
    assert changed == {} and after == assets
    both, _ = fold_catalog({}.get, {}, [_done("e007", "failed"), _done("e006", "succeeded")])
    assert both[("ns.a", "p1")].last_attempt.outcome == "SUCCEEDED"  # type: ignore[union-attr]


_COMPLETIONS = st.lists(
    st.builds(
        lambda i, outcome, pk, run: _done(f"e{i:03d}", outcome, pk=pk, run=run),
        st.integers(0, 999),
        st.sampled_from(["succeeded", "failed", "skipped", "cancelled"]),
        st.sampled_from(["p1", "p2", "p3"]),
        st.sampled_from(["r1", "r2", "r3", "r4"]),
    ),
    max_size=12,
    unique_by=lambda c: (c.event_id, (c.run_id, c.partition_key)),
)


@given(_COMPLETIONS, st.integers(0, 12), st.randoms())
def test_batches_in_any_order_give_the_rows_and_assets_of_one_fold(
    completions: list[AttemptCompletion], cut: int, rnd: Any
) -> None:
    one = {c.run_id: c for c in sorted(completions, key=lambda c: c.event_id)}  # one completion per attempt
    expected = fold_partition_status({}, completions and [c for c in completions if one[c.run_id] is c])
    shuffled = [c for c in completions if one[c.run_id] is c]
    rnd.shuffle(shuffled)
    rows, assets = _fold({}, {}, *shuffled[:cut])
    rows, assets = _fold(rows, assets, *shuffled[cut:])
    assert rows == expected
    assert assets == summarize(expected.values())
