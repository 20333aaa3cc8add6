"""Partition status and lineage (automation §6.5; L1-L3): attempt completions -> per (asset, partition) rows.

A row keeps two groups apart: the last attempt (run, time, outcome) and the last materialization (run,
time, code version, the worker's reported output, the lineage ref), so a failed retry never erases a
success and a skipped task changes nothing.

Each group holds the newest attempt among the completions that touch it, and of that attempt's
completions the first (smallest event id, the run fold's first-completion rule). Attempts are ordered
by when they were dispatched (``dispatched_at_ms``, which every completion of one attempt carries
alike), then run, task and attempt number: a repeat of an attempt is that same attempt whatever event
id it came under. The group is then a maximum under one total order, so folding any permutation,
repetition or batching of one set of completions gives the same rows (§6.8), even when a repeat is
folded in an earlier batch than its original. (A completion written before TaskFinished carried the
dispatch time is ordered by its own time instead: its repeats are then different points.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from servo.core.backfill_partitions import current_period, period_count
from servo.core.lineage import execution_lineage_ref
from servo.core.lineage import reported_int as _int
from servo.core.lineage import reported_str as _str
from servo.core.partition_keys import PartitionValue

__all__ = [
    "AttemptCompletion",
    "LastAttempt",
    "LastMaterialization",
    "PartitionStatusRow",
    "definition_size",
    "execution_lineage_ref",
    "fold_partition_status",
    "outranks",
    "partition_state",
    "partition_summary",
]

NEVER_MATERIALIZED = "NEVER_MATERIALIZED"
MATERIALIZED_BUT_LAST_ATTEMPT_FAILED = "MATERIALIZED_BUT_LAST_ATTEMPT_FAILED"
STALE = "STALE"
MATERIALIZED = "MATERIALIZED"
_OUTCOMES = {"succeeded": "SUCCEEDED", "failed": "FAILED", "cancelled": "CANCELLED", "skipped": "SKIPPED"}


@dataclass(frozen=True, slots=True)
class AttemptCompletion:
    """One attempt of an asset task ended (a TaskFinished event); ``partition_key`` is ``""`` when the
    asset is unpartitioned and ``output`` is the worker's camelCase TaskOutput."""

    event_id: str
    at_ms: int
    asset_key: str
    partition_key: str
    run_id: str
    task_key: str
    attempt: int
    outcome: str  # succeeded | failed | skipped | cancelled (TaskFinished's words)
    code_version: str | None = None
    materialization_id: str | None = None
    output: Mapping[str, Any] | None = None
    dispatched_at_ms: int | None = None  # when the attempt was dispatched (TaskFinished.dispatched_at)


@dataclass(frozen=True, slots=True)
class LastAttempt:
    event_id: str
    run_id: str
    task_key: str
    attempt: int
    at_ms: int
    outcome: str  # SUCCEEDED | FAILED | CANCELLED
    dispatched_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class LastMaterialization:
    event_id: str
    run_id: str
    task_key: str
    attempt: int
    at_ms: int
    code_version: str | None
    materialization_id: str | None
    row_count: int | None
    output_path: str | None
    delta_table: str | None
    delta_version: int | None
    delta_partition: str | None
    execution_lineage_ref: str
    dispatched_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class PartitionStatusRow:
    """One (asset, partition); ``row_version`` is the newest event id its groups hold."""

    asset_key: str
    partition_key: str
    last_attempt: LastAttempt | None = None
    last_materialization: LastMaterialization | None = None

    @property
    def row_version(self) -> str:
        ids = [g.event_id for g in (self.last_attempt, self.last_materialization) if g is not None]
        return max(ids, default="")


def _materialization(c: AttemptCompletion) -> LastMaterialization:
    out = c.output or {}
    return LastMaterialization(
        event_id=c.event_id,
        run_id=c.run_id,
        task_key=c.task_key,
        attempt=c.attempt,
        at_ms=c.at_ms,
        code_version=c.code_version,
        materialization_id=c.materialization_id or _str(out.get("materializationId")),
        row_count=_int(out.get("rowCount")),
        output_path=_str(out.get("outputPath")),
        delta_table=_str(out.get("deltaTable")),
        delta_version=_int(out.get("deltaVersion")),
        delta_partition=_str(out.get("deltaPartition")),
        execution_lineage_ref=execution_lineage_ref(
            c.run_id, c.task_key, c.attempt, c.materialization_id, out
        ),
        dispatched_at_ms=c.dispatched_at_ms,
    )


Ranked = AttemptCompletion | LastAttempt | LastMaterialization


def _attempt_order(x: Ranked) -> tuple[int, str, str, int]:
    at = x.dispatched_at_ms if x.dispatched_at_ms is not None else x.at_ms
    return at, x.run_id, x.task_key, x.attempt


def outranks(a: Ranked, b: Ranked) -> bool:
    """Whether ``a`` takes ``b``'s place in a group: a newer attempt, or the same attempt's earlier
    completion. A total order, so a group is the same whatever order its completions come in."""
    oa, ob = _attempt_order(a), _attempt_order(b)
    return oa > ob if oa != ob else a.event_id < b.event_id


def _apply(row: PartitionStatusRow, c: AttemptCompletion) -> PartitionStatusRow:
    outcome = _OUTCOMES.get(c.outcome)
    if outcome in (None, "SKIPPED"):
        return row
    attempt, materialization = row.last_attempt, row.last_materialization
    if attempt is None or outranks(c, attempt):
        attempt = LastAttempt(
            c.event_id, c.run_id, c.task_key, c.attempt, c.at_ms, str(outcome), c.dispatched_at_ms
        )
    if outcome == "SUCCEEDED" and (materialization is None or outranks(c, materialization)):
        materialization = _materialization(c)
    return PartitionStatusRow(row.asset_key, row.partition_key, attempt, materialization)


def fold_partition_status(
    rows: Mapping[tuple[str, str], PartitionStatusRow], completions: Iterable[AttemptCompletion]
) -> dict[tuple[str, str], PartitionStatusRow]:
    """New rows keyed ``(asset_key, partition_key)``; ``rows`` is left as it was."""
    out = dict(rows)
    for c in completions:
        key = (c.asset_key, c.partition_key)
        before = out.get(key) or PartitionStatusRow(c.asset_key, c.partition_key)
        after = _apply(before, c)
        if after.row_version:
            out[key] = after
    return out


def _last_attempt_failed(row: PartitionStatusRow) -> bool:
    return row.last_attempt is not None and row.last_attempt.outcome == "FAILED"


def partition_state(row: PartitionStatusRow | None, *, stale: bool) -> str:
    """NEVER_MATERIALIZED, else MATERIALIZED_BUT_LAST_ATTEMPT_FAILED (the newest attempt failed), else
    STALE (``stale`` from ``servo.core.staleness``), else MATERIALIZED."""
    if row is None or row.last_materialization is None:
        return NEVER_MATERIALIZED
    if _last_attempt_failed(row):
        return MATERIALIZED_BUT_LAST_ATTEMPT_FAILED
    return STALE if stale else MATERIALIZED


def definition_size(dimensions: Sequence[Mapping[str, Any]], now_ms: int) -> int | None:
    """How many partitions the definition holds now: 1 unpartitioned; None if a time dimension has no
    start (unbounded); counted, never enumerated, so an hourly dimension costs nothing."""
    total = 1
    for dim in dimensions:
        if dim.get("kind") == "static":
            total *= len(dim.get("values") or ())
            continue
        start = dim.get("start")
        if start is None:
            return None
        granularity = str(dim.get("granularity", "day"))
        first = PartitionValue("t" if granularity == "hour" else "d", str(start))
        total *= period_count(granularity, first, current_period(dim, now_ms))
    return total


def partition_summary(
    dimensions: Sequence[Mapping[str, Any]],
    rows: Iterable[PartitionStatusRow],
    stale_keys: frozenset[str],
    *,
    now_ms: int,
) -> dict[str, int | None]:
    """``{total, materialized, failed, missing, stale}`` of one asset: ``failed`` counts partitions whose
    newest attempt failed (materialized or not), ``stale`` those whose status is STALE, ``missing`` the
    definition's partitions never materialized (None with ``total`` when unbounded)."""
    materialized = failed = stale = 0
    for row in rows:
        materialized += row.last_materialization is not None
        failed += _last_attempt_failed(row)
        stale += partition_state(row, stale=row.partition_key in stale_keys) == STALE
    total = definition_size(dimensions, now_ms)
    missing = None if total is None else max(total - materialized, 0)
    return {
        "total": total,
        "materialized": materialized,
        "failed": failed,
        "missing": missing,
        "stale": stale,
    }
