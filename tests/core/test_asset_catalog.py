"""The catalog fold: changed partition rows only, ``assets`` rows kept by difference, one completion
per attempt (automation §6.5, §6.8; L2, L3)."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from servo.core import controller as ctl
from servo.core.asset_catalog import AssetRow, completions_of, fold_catalog, summarize
from servo.core.events import TaskFinished, TaskStarted, make_event
from servo.core.ids import attempt_id, dispatch_id
from servo.core.partition_status import AttemptCompletion, PartitionStatusRow, fold_partition_status

from tests.core.test_controller import NOW, partition, task_row


def _done(
    eid: str,
    outcome: str,
    *,
    pk: str = "p1",
    run: str = "r1",
    attempt: int = 1,
    dispatched: int | None = None,
) -> AttemptCompletion:
    return AttemptCompletion(
        eid, int(eid[1:]), "ns.a", pk, run, "ns.a", attempt, outcome, dispatched_at_ms=dispatched
    )


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
    """A redelivered callback (the same dispatch time): the first one counts."""
    rows, assets = _fold({}, {}, _done("e001", "succeeded", dispatched=1))
    changed, after = fold_catalog(rows.get, assets, [_done("e005", "failed", dispatched=1)])
    assert changed == {} and after == assets
    both, _ = fold_catalog(
        {}.get, {}, [_done("e007", "failed", dispatched=1), _done("e006", "succeeded", dispatched=1)]
    )
    assert both[("ns.a", "p1")].last_attempt.outcome == "SUCCEEDED"  # type: ignore[union-attr]


def _batched(batches: list[list[AttemptCompletion]]) -> tuple[dict[Any, Any], dict[str, AssetRow]]:
    rows: dict[Any, Any] = {}
    assets: dict[str, AssetRow] = {}
    for batch in batches:
        rows, assets = _fold(rows, assets, *batch)
    return rows, assets


def test_a_repeat_folded_before_its_original_leaves_what_a_rebuild_does() -> None:
    """Regression: attempt A's redelivered completion (e005) folded in a batch before A's own (e001),
    with attempt B's completion (e003) between the two ids, left A as the last attempt live while a
    rebuild (one batch: A's first completion is e001, older than B's) said B."""
    a_repeat, a_first = _done("e005", "failed", run="r1"), _done("e001", "failed", run="r1")
    b = _done("e003", "succeeded", run="r2")
    live = _batched([[a_repeat], [a_first, b]])
    assert live == _batched([[a_first, b, a_repeat]])
    assert live == _batched([[b], [a_repeat], [a_first]])
    # With the attempts' dispatch times (what every completion of one attempt carries alike) the
    # newest attempt is B's, however the completions arrive.
    a_repeat, a_first = (replace(c, dispatched_at_ms=100) for c in (a_repeat, a_first))
    b = replace(b, dispatched_at_ms=200)
    for batches in ([[a_repeat], [a_first, b]], [[b], [a_repeat], [a_first]], [[a_first, b, a_repeat]]):
        rows, assets = _batched(batches)
        last = rows[("ns.a", "p1")].last_attempt
        assert (last.run_id, last.outcome, last.event_id) == ("r2", "SUCCEEDED", "e003")
        assert (assets["ns.a"].materialized, assets["ns.a"].failed) == (1, 0)


def _first_of_newest(
    completions: list[AttemptCompletion], outcomes: set[str], issued: dict[tuple[str, str, int], int]
) -> AttemptCompletion | None:
    """The model: attempts ordered by dispatch time (``issued``: the issue time of the token each
    attempt's worker was given, by partition, run and attempt; then run, task, attempt); the newest
    attempt with a completion in ``outcomes``, and of its completions there the first (smallest id)."""
    kept = [c for c in completions if c.outcome in outcomes]
    if not kept:
        return None

    def rank(c: AttemptCompletion) -> tuple[int, str, str, int]:
        return issued[(c.partition_key, c.run_id, c.attempt)], c.run_id, c.task_key, c.attempt

    newest = max(rank(c) for c in kept)
    return min((c for c in kept if rank(c) == newest), key=lambda c: c.event_id)


def _forced(eid: str, pk: str, run: str, attempt: int, dispatched_ms: int) -> AttemptCompletion:
    """The sweep's heartbeat-timeout end of an attempt dispatched at ``dispatched_ms``, as the
    controller decides it from the task row."""
    aid = attempt_id(dispatch_id(run, "ns.a", attempt))
    row = task_row(
        run_id=run, state="RUNNING", attempt=attempt, attempt_id=aid, started_at=NOW - 200_000,
        last_heartbeat_at=NOW - 91_000, partition_key=pk, dispatched_at=dispatched_ms,
    )  # fmt: skip
    (d,) = ctl.sweep(partition(row), NOW)
    assert isinstance(d, ctl.FailAttempt)
    return AttemptCompletion(
        eid, int(eid[1:]), d.asset_key or "", d.partition_key or "", d.run_id, d.task_key, d.attempt,
        d.outcome.lower(), d.code_version, dispatched_at_ms=d.dispatched_at,
    )  # fmt: skip


_ATTEMPTS = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2"]),
        st.sampled_from(["r1", "r2", "r3"]),
        st.integers(1, 2),
        st.integers(0, 5_999),  # dispatch time (ms): ties between attempts too, at whole seconds
        st.lists(st.sampled_from(["succeeded", "failed", "skipped", "cancelled"]), max_size=3),
        st.booleans(),  # the sweep also ended the attempt (a heartbeat timeout)
    ).filter(lambda a: bool(a[4]) or a[5]),
    max_size=8,
    unique_by=lambda a: (a[0], a[1], a[2]),
)


@given(_ATTEMPTS, st.randoms(use_true_random=False), st.lists(st.integers(0, 20), max_size=4))
def test_repeats_in_any_batches_and_order_give_the_rows_of_the_model(
    attempts: list[Any], rnd: Any, cuts: list[int]
) -> None:
    """Every attempt's completions (its repeats under other ids, even with other outcomes, and the
    sweep's forced end of it, before or after the worker's reports) shuffled and cut into batches:
    the rows are the model's, in which a worker's report carries its token's issue time (the
    dispatch, in whole seconds), and the assets rows their summary."""
    ids = iter(rnd.sample(range(1000), 40))
    completions = [
        _done(f"e{next(ids):03d}", outcome, pk=pk, run=run, attempt=n, dispatched=at // 1000 * 1000)
        for pk, run, n, at, outcomes, _ in attempts
        for outcome in outcomes
    ]
    completions += [
        _forced(f"e{next(ids):03d}", pk, run, n, at) for pk, run, n, at, _, forced in attempts if forced
    ]
    rnd.shuffle(completions)
    issued = {(pk, run, n): at // 1000 * 1000 for pk, run, n, at, _, _ in attempts}
    bounds = [0, *sorted(min(c, len(completions)) for c in cuts), len(completions)]
    rows, assets = _batched([completions[a:b] for a, b in pairwise(bounds)])
    for pk in ("p1", "p2"):
        mine = [c for c in completions if c.partition_key == pk]
        last = _first_of_newest(mine, {"succeeded", "failed", "cancelled"}, issued)
        mat = _first_of_newest(mine, {"succeeded"}, issued)
        row = rows.get(("ns.a", pk))
        if last is None:
            assert row is None
            continue
        assert row is not None and row.last_attempt is not None
        assert (row.last_attempt.event_id, row.last_attempt.outcome) == (last.event_id, last.outcome.upper())
        got = row.last_materialization
        assert (got.event_id if got else None) == (mat.event_id if mat else None)
    assert assets == summarize(rows.values())


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
