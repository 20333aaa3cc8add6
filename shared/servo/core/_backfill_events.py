"""Backfill event payloads (automation §5): creation, one event per planned chunk, state moves.

Like the schedule events they belong to no run (``run_id`` is None); ``servo.core.backfill_fold`` folds
them into the ``backfills`` and ``backfill_chunks`` rows. Each key derives from the backfill's ids, so a
replayed create, a duplicated planner or a repeated operator move writes the same key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from servo.core._event_fields import bad_field
from servo.core.backfills import (
    BACKFILL_STATES,
    backfill_run_key,
    chunk_id,
    chunk_request_id,
    state_change_key,
)


def _check_id(backfill_id: str) -> None:
    if not backfill_id.startswith("bf_"):
        raise bad_field("backfill_id", f"{backfill_id!r} is not a backfill id")


@dataclass(frozen=True, slots=True)
class BackfillCreated:
    """The request as resolved against the manifest of its day: the keys are stored, never recomputed."""

    backfill_id: str
    assets: tuple[str, ...]
    selector: dict[str, Any]
    partition_keys: tuple[str, ...]
    chunk_size: int
    max_concurrent_runs: int
    labels: dict[str, str] | None = None
    parent_backfill_id: str | None = None

    KINDS: ClassVar[Mapping[str, str]] = {
        "backfill_id": "id", "assets": "strs", "selector": "obj", "partition_keys": "strs",
        "chunk_size": "attempt", "max_concurrent_runs": "attempt", "labels": "labels",
        "parent_backfill_id": "id",
    }  # fmt: skip

    def __post_init__(self) -> None:
        _check_id(self.backfill_id)
        if not self.assets:
            raise bad_field("assets", "a backfill selects at least one asset")
        if not self.partition_keys:
            raise bad_field("partition_keys", "a backfill covers at least one partition")

    def idempotency_key(self) -> str:
        return f"backfill_create:{self.backfill_id}"


@dataclass(frozen=True, slots=True)
class BackfillChunkPlanned:
    """Chunk ``chunk_index`` planned: its partitions and their run requests (request id -> run key, both
    derived from the backfill id, the index and the position, so a re-plan derives the same ones)."""

    backfill_id: str
    chunk_index: int
    partition_keys: tuple[str, ...]
    run_requests: dict[str, str]

    KINDS: ClassVar[Mapping[str, str]] = {
        "backfill_id": "id", "chunk_index": "int", "partition_keys": "strs", "run_requests": "labels",
    }  # fmt: skip

    def __post_init__(self) -> None:
        _check_id(self.backfill_id)
        if not self.partition_keys:
            raise bad_field("partition_keys", "a chunk holds at least one partition")
        expected = {
            chunk_request_id(self.chunk_id, j): backfill_run_key(self.backfill_id, self.chunk_index, j)
            for j in range(len(self.partition_keys))
        }
        if dict(self.run_requests) != expected:
            raise bad_field("run_requests", "must map each position's request id to its derived run key")

    @property
    def chunk_id(self) -> str:
        return chunk_id(self.backfill_id, self.chunk_index)

    def idempotency_key(self) -> str:
        return f"backfill_chunk:{self.backfill_id}:{self.chunk_index}"


@dataclass(frozen=True, slots=True)
class BackfillStateChanged:
    """One move, an operator's or the planner's; the fold applies it only if ``from_state`` and
    ``state_version - 1`` are still current (compare-and-set), else lists it as not applied."""

    backfill_id: str
    from_state: str
    to_state: str
    state_version: int
    reason: str | None = None

    KINDS: ClassVar[Mapping[str, str]] = {
        "backfill_id": "id", "from_state": "id", "to_state": "id", "state_version": "attempt",
        "reason": "str",
    }  # fmt: skip

    def __post_init__(self) -> None:
        _check_id(self.backfill_id)
        for name in ("from_state", "to_state"):
            if getattr(self, name) not in BACKFILL_STATES:
                raise bad_field(name, f"{getattr(self, name)!r} not in {sorted(BACKFILL_STATES)}")

    def idempotency_key(self) -> str:
        return state_change_key(self.backfill_id, self.state_version, self.to_state)


BACKFILL_EVENT_TYPES = (BackfillCreated, BackfillChunkPlanned, BackfillStateChanged)
