"""Backfill ids, states and decisions (automation §5 ids, §6.4; B3-B9).

Everything here is a pure function of projection values and the clock, so repeated or concurrent sweeps
and compactors take the same decisions and derive the same ids (§2: no daemon, no leader).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from servo.core.backfill_partitions import partition_sort_key
from servo.core.errors import Conflict
from servo.core.fingerprints import request_fingerprint
from servo.core.ids import b32_lower, sha256_bytes
from servo.core.partition_keys import parse_partition_key
from servo.core.schedules import TickRunRequest

__all__ = [
    "ACTIVE_STATES",
    "BACKFILL_STATES",
    "MAX_PLANNING_LAG_MS",
    "TERMINAL_STATES",
    "Transition",
    "apply_transition",
    "backfill_id",
    "backfill_outcome",
    "backfill_run_key",
    "chunk_id",
    "chunk_request_id",
    "chunk_run_requests",
    "chunk_state",
    "chunks_to_plan",
    "operator_move",
    "outcome_counts",
    "partition_outcome",
    "retry_failed_partitions",
    "state_change_key",
]

PENDING: Final = "PENDING"
RUNNING: Final = "RUNNING"
PAUSED: Final = "PAUSED"
SUCCEEDED: Final = "SUCCEEDED"
FAILED: Final = "FAILED"
CANCELLED: Final = "CANCELLED"
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
BACKFILL_STATES = frozenset({PENDING, RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED})
ACTIVE_STATES = frozenset({PENDING, RUNNING})  # the states the planner plans chunks for
MAX_PLANNING_LAG_MS = 30_000

# §6.4: each move is (from, to); RUNNING from PENDING and the two outcomes are the fold's own moves.
_ALLOWED: Final = frozenset(
    {
        (PENDING, RUNNING),
        (PENDING, PAUSED),
        (RUNNING, PAUSED),
        (PAUSED, RUNNING),
        (PENDING, CANCELLED),
        (RUNNING, CANCELLED),
        (PAUSED, CANCELLED),
        (RUNNING, SUCCEEDED),
        (RUNNING, FAILED),
        (PAUSED, SUCCEEDED),
        (PAUSED, FAILED),
    }
)
# What an operator may ask for, and from where (resume is PAUSED -> RUNNING only).
_OPERATOR_MOVES: Final = {
    "pause": (PAUSED, frozenset({PENDING, RUNNING})),
    "resume": (RUNNING, frozenset({PAUSED})),
    "cancel": (CANCELLED, frozenset({PENDING, RUNNING, PAUSED})),
}


def backfill_id(tenant: str, workspace: str, idempotency_key: str) -> str:
    """``bf_`` + lower(b32(sha256(``{tenant}:{ws}:{key}``)))[:26]: a replayed create names the same one."""
    return "bf_" + b32_lower(sha256_bytes(f"{tenant}:{workspace}:{idempotency_key}"))[:26]


def chunk_id(backfill: str, index: int) -> str:
    return f"{backfill}:{index}"


def chunk_request_id(chunk: str, position: int) -> str:
    """The run request of the ``position``-th partition of a chunk: ``chunk:{chunk_id}:{j}``."""
    return f"chunk:{chunk}:{position}"


def backfill_run_key(backfill: str, index: int, position: int) -> str:
    return f"backfill:{backfill}:chunk:{index}:{position}"


def chunk_run_requests(
    backfill: str, index: int, keys: Sequence[str], assets: Sequence[str], labels: Mapping[str, str]
) -> tuple[TickRunRequest, ...]:
    """The run requests BackfillChunkPlanned carries (B3): one per partition, each selecting every asset of
    the backfill (the planner orders them by the manifest graph, B10), source ``backfill``/bf/chunk id.
    The request shape is the one schedule ticks carry, so one processor submits both."""
    chunk = chunk_id(backfill, index)
    frozen = MappingProxyType(dict(labels))
    source = MappingProxyType({"type": "backfill", "id": backfill, "ref": chunk})
    return tuple(
        TickRunRequest(
            request_id=chunk_request_id(chunk, j),
            run_key=backfill_run_key(backfill, index, j),
            request_fingerprint=request_fingerprint(assets, False, False, key, frozen),
            selection=tuple(assets),
            partition_key=key,
            labels=frozen,
            source=source,
        )
        for j, key in enumerate(keys)
    )


def state_change_key(backfill: str, state_version: int, to_state: str) -> str:
    """The idempotency key of BackfillStateChanged: ``backfill_state:{bf}:{version}:{TO}``."""
    return f"backfill_state:{backfill}:{state_version}:{to_state}"


@dataclass(frozen=True, slots=True)
class Transition:
    """One move: the state it leaves, the state it enters and the version it makes."""

    from_state: str
    to_state: str
    state_version: int


def _conflict(kind: str, message: str, **details: object) -> Conflict:
    return Conflict(message, details={"conflictType": kind, **details})


def operator_move(
    action: str, state: str, state_version: int, expected_state_version: int | None = None
) -> Transition | None:
    """The move ``pause``/``resume``/``cancel`` makes from the projection's state, or None if the
    backfill is already there (200 changed:false).

    Raises:
        Conflict: ``ILLEGAL_TRANSITION`` (e.g. resume of a terminal backfill) or ``VERSION_CONFLICT``
            (``expected_state_version`` is not the current one); ``details.conflictType`` says which.
    """
    target, sources = _OPERATOR_MOVES[action]
    if state == target:
        return None
    if state not in sources:
        raise _conflict(
            "ILLEGAL_TRANSITION", f"a {state} backfill cannot {action}", state=state, requested=target
        )
    if expected_state_version is not None and expected_state_version != state_version:
        raise _conflict(
            "VERSION_CONFLICT",
            f"expectedStateVersion {expected_state_version} is not the current {state_version}",
            stateVersion=state_version,
        )
    return Transition(state, target, state_version + 1)


def apply_transition(state: str, state_version: int, move: Transition) -> bool:
    """Whether the fold applies a recorded move: its ``from`` is still the state and its version the
    next one (compare-and-set), and the tables allow it. A duplicate or a raced move is not applied."""
    return (
        move.from_state == state
        and move.state_version == state_version + 1
        and (move.from_state, move.to_state) in _ALLOWED
    )


def chunks_to_plan(
    *,
    state: str,
    chunk_sizes: Sequence[int],
    planned: int,
    active_runs: int,
    max_concurrent_runs: int,
    lag_ms: int,
) -> tuple[int, ...]:
    """The indexes of the chunks to plan now, in order: the next one while active runs plus its size
    stay within ``max_concurrent_runs``; none while not PENDING/RUNNING or the projection is over 30 s
    behind (its active-run count could be stale)."""
    if state not in ACTIVE_STATES or lag_ms > MAX_PLANNING_LAG_MS:
        return ()
    chosen: list[int] = []
    index, active = planned, active_runs
    while index < len(chunk_sizes) and active + chunk_sizes[index] <= max_concurrent_runs:
        chosen.append(index)
        active += chunk_sizes[index]
        index += 1
    return tuple(chosen)


_RUN_OUTCOMES: Final = {"SUCCEEDED": SUCCEEDED, "FAILED": FAILED, "TIMED_OUT": FAILED, "CANCELLED": CANCELLED}


def partition_outcome(request_status: str | None, run_state: str | None) -> str:
    """One partition of a planned chunk: PENDING until its request resolves, FAILED if it was REJECTED or
    CONFLICT, else its run's: RUNNING until terminal, then SUCCEEDED, FAILED (or TIMED_OUT) or CANCELLED.
    An EXISTING request follows the run it found."""
    if request_status in (None, "PENDING"):
        return PENDING
    if request_status in ("REJECTED", "CONFLICT"):
        return FAILED
    return _RUN_OUTCOMES.get(run_state or "", RUNNING)


def chunk_state(planned: bool, partition_outcomes: Iterable[str], *, backfill_cancelled: bool) -> str:
    """A chunk's state from its partitions: unplanned PENDING (CANCELLED once the backfill is), RUNNING
    while any is open, then SUCCEEDED if all did, else CANCELLED (backfill cancelled) or FAILED."""
    if not planned:
        return CANCELLED if backfill_cancelled else PENDING
    outcomes = list(partition_outcomes)
    if any(o in (PENDING, RUNNING) for o in outcomes):
        return RUNNING
    if all(o == SUCCEEDED for o in outcomes):
        return SUCCEEDED
    return CANCELLED if backfill_cancelled else FAILED


def backfill_outcome(state: str, chunk_states: Sequence[str]) -> str | None:
    """The fold's own move once every chunk is planned and terminal: SUCCEEDED iff every chunk (so every
    run) succeeded, else FAILED; PENDING -> RUNNING once a chunk is planned; None when nothing moves."""
    if state in TERMINAL_STATES:
        return None
    if state == PENDING:
        return RUNNING if any(c != PENDING for c in chunk_states) else None
    if chunk_states and all(c in TERMINAL_STATES for c in chunk_states):
        return SUCCEEDED if all(c == SUCCEEDED for c in chunk_states) else FAILED
    return None


def outcome_counts(outcomes: Iterable[str], total: int) -> dict[str, int]:
    """``{total, pending, running, succeeded, failed, cancelled}``; whatever has no outcome yet is pending."""
    seen = Counter(outcomes)
    counts = {"total": total}
    for name in (RUNNING, SUCCEEDED, FAILED, CANCELLED):
        counts[name.lower()] = seen[name]
    counts["pending"] = total - sum(seen[n] for n in (RUNNING, SUCCEEDED, FAILED, CANCELLED))
    return {key: counts[key] for key in ("total", "pending", "running", "succeeded", "failed", "cancelled")}


def retry_failed_partitions(parent_state: str, outcomes: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The child backfill's explicit keys: the parent's partitions that did not succeed, unique and sorted
    as a backfill sorts them. ``outcomes`` are ``(partition_key, outcome)`` pairs, repeats allowed.

    Raises:
        Conflict: ``PARENT_NOT_FAILED`` unless the parent ended FAILED.
    """
    if parent_state != FAILED:
        raise _conflict(
            "PARENT_NOT_FAILED", f"retry-failed needs a FAILED backfill; this one is {parent_state}"
        )
    pairs = list(outcomes)
    succeeded = {key for key, outcome in pairs if outcome == SUCCEEDED}
    failed = {key for key, _ in pairs} - succeeded
    return tuple(sorted(failed, key=lambda key: partition_sort_key(parse_partition_key(key))))
