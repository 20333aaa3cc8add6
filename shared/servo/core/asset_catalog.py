"""The asset catalog's fold (automation §5, §6.5): TaskFinished events -> changed partition_status rows
and the per-asset ``assets`` rows, without reading the partitions a batch does not touch.

``fold_catalog`` takes a lookup of the existing partition rows, so the caller can keep millions of them
in files it never rewrites whole: the fold reads the rows of the (asset, partition) pairs the batch
touches, and the ``assets`` rows are kept by difference (a row's before and after), so a publish costs
what changed, not how many partitions exist.

Each group of a row (and of an ``assets`` row, over its partitions) is a maximum under one total order
(``servo.core.partition_status.outranks``: the newest attempt by dispatch time, then an attempt's first
completion), so the rows are a function of the set of completions folded, not of their arrival: a
repeat of an attempt (a redelivered callback) is that same attempt whatever event id it came under,
and one folded in an earlier batch than its original leaves what a rebuild from the ledger does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from servo.core.events import Event, TaskFinished
from servo.core.partition_status import (
    AttemptCompletion,
    LastAttempt,
    LastMaterialization,
    PartitionStatusRow,
    fold_partition_status,
    outranks,
)

__all__ = [
    "AssetRow",
    "PartitionKey",
    "completions_of",
    "fold_catalog",
    "summarize",
]

PartitionKey = tuple[str, str]  # (asset_key, partition_key); "" when unpartitioned


@dataclass(frozen=True, slots=True)
class AssetRow:
    """One asset of the catalog: how many partitions are materialized / failed (newest attempt
    failed), and its newest materialization and attempt over every partition."""

    asset_key: str
    materialized: int = 0
    failed: int = 0
    last_materialization: tuple[str, LastMaterialization] | None = None  # (partition_key, group)
    last_attempt: tuple[str, LastAttempt] | None = None

    @property
    def row_version(self) -> str:
        ids = [g[1].event_id for g in (self.last_materialization, self.last_attempt) if g is not None]
        return max(ids, default="")


def completions_of(events: Iterable[Event]) -> list[AttemptCompletion]:
    """The attempt completions of asset tasks among ``events`` (a task without an asset is not one)."""
    out = []
    for event in events:
        d = event.data
        if isinstance(d, TaskFinished) and d.asset_key:
            out.append(
                AttemptCompletion(
                    event_id=event.event_id,
                    at_ms=event.timestamp_ms,
                    asset_key=d.asset_key,
                    partition_key=d.partition_key or "",
                    run_id=d.run_id,
                    task_key=d.task_key,
                    attempt=d.attempt,
                    outcome=d.outcome,
                    code_version=d.code_version,
                    materialization_id=d.materialization_id,
                    output=d.output,
                    dispatched_at_ms=d.dispatched_at,
                )
            )
    return out


def _failed(row: PartitionStatusRow | None) -> int:
    return int(row is not None and row.last_attempt is not None and row.last_attempt.outcome == "FAILED")


def _materialized(row: PartitionStatusRow | None) -> int:
    return int(row is not None and row.last_materialization is not None)


def _newer(
    a: tuple[str, LastMaterialization] | tuple[str, LastAttempt] | None,
    b: tuple[str, LastMaterialization] | tuple[str, LastAttempt] | None,
) -> tuple[str, LastMaterialization] | tuple[str, LastAttempt] | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if outranks(b[1], a[1]) else a


def _account(asset: AssetRow, before: PartitionStatusRow | None, after: PartitionStatusRow) -> AssetRow:
    lm = after.last_materialization
    la = after.last_attempt
    return replace(
        asset,
        materialized=asset.materialized + _materialized(after) - _materialized(before),
        failed=asset.failed + _failed(after) - _failed(before),
        last_materialization=_newer(  # type: ignore[arg-type]
            asset.last_materialization, (after.partition_key, lm) if lm is not None else None
        ),
        last_attempt=_newer(  # type: ignore[arg-type]
            asset.last_attempt, (after.partition_key, la) if la is not None else None
        ),
    )


def fold_catalog(
    lookup: Callable[[PartitionKey], PartitionStatusRow | None],
    assets: Mapping[str, AssetRow],
    completions: Iterable[AttemptCompletion],
) -> tuple[dict[PartitionKey, PartitionStatusRow], dict[str, AssetRow]]:
    """The partition rows the completions change (only those) and the new ``assets`` rows.

    ``lookup`` gives the current row of one (asset, partition) pair, None if it has none.
    """
    completions = list(completions)
    before: dict[PartitionKey, PartitionStatusRow | None] = {}
    for c in completions:
        key = (c.asset_key, c.partition_key)
        if key not in before:
            before[key] = lookup(key)
    current = {k: v for k, v in before.items() if v is not None}
    after = fold_partition_status(current, completions)
    changed = {k: row for k, row in after.items() if row != before.get(k)}
    new_assets = dict(assets)
    for key in sorted(changed):
        asset = new_assets.get(key[0]) or AssetRow(key[0])
        new_assets[key[0]] = _account(asset, before.get(key), changed[key])
    return changed, new_assets


def summarize(rows: Iterable[PartitionStatusRow]) -> dict[str, AssetRow]:
    """The ``assets`` rows recomputed from every partition row (what the kept ones must equal)."""
    out: dict[str, AssetRow] = {}
    for row in rows:
        asset = out.get(row.asset_key) or AssetRow(row.asset_key)
        out[row.asset_key] = _account(asset, None, row)
    return out
