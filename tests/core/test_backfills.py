"""Backfill ids, state machine, planning and outcomes (automation §5, §6.4; B3-B9)."""

from __future__ import annotations

import hashlib
from base64 import b32encode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servo.core.backfill_partitions import chunk_partitions
from servo.core.backfills import (
    Transition,
    apply_transition,
    backfill_id,
    backfill_outcome,
    backfill_run_key,
    chunk_id,
    chunk_request_id,
    chunk_run_requests,
    chunk_state,
    chunks_to_plan,
    operator_move,
    outcome_counts,
    partition_outcome,
    retry_failed_partitions,
    state_change_key,
)
from servo.core.errors import Conflict
from servo.core.fingerprints import request_fingerprint


def _day(d: int) -> str:
    return f"date=d:2025-01-{d:02d}"


def test_b1_backfill_id_is_derived_from_tenant_workspace_and_key() -> None:
    digest = hashlib.sha256(b"t1:ws:key-1").digest()
    assert backfill_id("t1", "ws", "key-1") == "bf_" + b32encode(digest).decode().rstrip("=").lower()[:26]
    assert backfill_id("t1", "ws", "key-1") == backfill_id("t1", "ws", "key-1")
    assert backfill_id("t1", "ws", "key-2") != backfill_id("t1", "ws", "key-1")
    assert len(backfill_id("t1", "ws", "key-1")) == 29


def test_b3_chunk_request_and_run_key_ids() -> None:
    bf = backfill_id("t", "w", "k")
    assert chunk_id(bf, 3) == f"{bf}:3"
    assert chunk_request_id(chunk_id(bf, 3), 1) == f"chunk:{bf}:3:1"
    assert backfill_run_key(bf, 3, 1) == f"backfill:{bf}:chunk:3:1"
    assert state_change_key(bf, 8, "PAUSED") == f"backfill_state:{bf}:8:PAUSED"


def test_b6_pause_resume_cancel_versions() -> None:
    assert operator_move("pause", "RUNNING", 7) == Transition("RUNNING", "PAUSED", 8)
    assert operator_move("resume", "PAUSED", 8) == Transition("PAUSED", "RUNNING", 9)
    assert operator_move("cancel", "RUNNING", 7) == Transition("RUNNING", "CANCELLED", 8)
    assert operator_move("cancel", "PAUSED", 8, expected_state_version=8) == Transition(
        "PAUSED", "CANCELLED", 9
    )
    assert operator_move("pause", "PENDING", 0) == Transition("PENDING", "PAUSED", 1)


def test_b6_already_there_is_unchanged() -> None:
    assert operator_move("pause", "PAUSED", 8) is None
    assert operator_move("resume", "RUNNING", 9) is None
    assert operator_move("cancel", "CANCELLED", 9) is None


@pytest.mark.parametrize(
    ("action", "state"),
    [
        ("resume", "SUCCEEDED"),
        ("resume", "FAILED"),
        ("pause", "CANCELLED"),
        ("cancel", "SUCCEEDED"),
        ("resume", "PENDING"),
    ],
)
def test_b7_terminal_is_final_and_illegal_moves_conflict(action: str, state: str) -> None:
    with pytest.raises(Conflict) as exc:
        operator_move(action, state, 5)
    assert exc.value.details["conflictType"] == "ILLEGAL_TRANSITION"


def test_b7_stale_expected_version_conflicts() -> None:
    with pytest.raises(Conflict) as exc:
        operator_move("pause", "RUNNING", 7, expected_state_version=6)
    assert exc.value.details["conflictType"] == "VERSION_CONFLICT"
    assert exc.value.details["stateVersion"] == 7


def test_b7_duplicate_or_raced_transition_is_applied_once() -> None:
    pause = Transition("RUNNING", "PAUSED", 8)
    assert apply_transition("RUNNING", 7, pause)
    assert not apply_transition("PAUSED", 8, pause)  # the same move again
    cancel = Transition("RUNNING", "CANCELLED", 8)  # decided from v7 concurrently with the pause
    assert not apply_transition("PAUSED", 8, cancel)
    assert not apply_transition("SUCCEEDED", 9, Transition("SUCCEEDED", "RUNNING", 10))


def test_b4_max_two_chunk_two_five_partitions() -> None:
    sizes = [len(c) for c in chunk_partitions([_day(d) for d in range(1, 6)], 2)]
    assert sizes == [2, 2, 1]
    plan = {"chunk_sizes": sizes, "max_concurrent_runs": 2, "lag_ms": 0}
    assert chunks_to_plan(state="PENDING", planned=0, active_runs=0, **plan) == (0,)
    assert chunks_to_plan(state="RUNNING", planned=1, active_runs=1, **plan) == ()  # one chunk-0 run left
    assert chunks_to_plan(state="RUNNING", planned=1, active_runs=0, **plan) == (1,)
    assert chunks_to_plan(state="RUNNING", planned=2, active_runs=1, **plan) == (2,)
    assert chunks_to_plan(state="RUNNING", planned=3, active_runs=0, **plan) == ()


def test_b5_lagging_projection_or_pause_plans_nothing() -> None:
    plan = {"chunk_sizes": [1, 1], "planned": 0, "active_runs": 0, "max_concurrent_runs": 10}
    assert chunks_to_plan(state="RUNNING", lag_ms=30_000, **plan) == (0, 1)
    assert chunks_to_plan(state="RUNNING", lag_ms=30_001, **plan) == ()
    for state in ("PAUSED", "CANCELLED", "SUCCEEDED", "FAILED"):
        assert chunks_to_plan(state=state, lag_ms=0, **plan) == ()


@given(
    st.integers(1, 60),
    st.integers(1, 10),
    st.integers(0, 10),
    st.lists(st.integers(0, 10), max_size=200),
)
def test_never_more_than_max_concurrent_runs_active(
    total: int, size: int, extra: int, finish: list[int]
) -> None:
    """A simulated schedule: plan, finish some active runs (chosen by hypothesis), plan again."""
    most = size + extra
    sizes = [len(c) for c in chunk_partitions(list(range(total)), size)]
    planned, active, done = 0, 0, 0
    for n in [*finish, *([most] * (total + 1))]:
        new = chunks_to_plan(
            state="RUNNING",
            chunk_sizes=sizes,
            planned=planned,
            active_runs=active,
            max_concurrent_runs=most,
            lag_ms=0,
        )
        assert list(new) == list(range(planned, planned + len(new)))
        planned += len(new)
        active += sum(sizes[i] for i in new)
        assert active <= most
        finished = min(n, active)
        active -= finished
        done += finished
    assert planned == len(sizes) and done == total


def test_b9_partition_outcomes_from_requests_and_runs() -> None:
    assert partition_outcome(None, None) == "PENDING"
    assert partition_outcome("PENDING", None) == "PENDING"
    assert partition_outcome("REJECTED", None) == "FAILED"
    assert partition_outcome("CONFLICT", None) == "FAILED"
    assert partition_outcome("CREATED", None) == "RUNNING"
    assert partition_outcome("CREATED", "RUNNING") == "RUNNING"
    assert partition_outcome("EXISTING", "SUCCEEDED") == "SUCCEEDED"
    assert partition_outcome("CREATED", "TIMED_OUT") == "FAILED"
    assert partition_outcome("CREATED", "CANCELLED") == "CANCELLED"


def test_b9_chunks_and_backfill_end_from_their_runs() -> None:
    assert chunk_state(False, [], backfill_cancelled=False) == "PENDING"
    assert chunk_state(False, [], backfill_cancelled=True) == "CANCELLED"
    assert chunk_state(True, ["SUCCEEDED", "RUNNING"], backfill_cancelled=False) == "RUNNING"
    assert chunk_state(True, ["SUCCEEDED", "SUCCEEDED"], backfill_cancelled=False) == "SUCCEEDED"
    assert chunk_state(True, ["SUCCEEDED", "FAILED"], backfill_cancelled=False) == "FAILED"
    assert chunk_state(True, ["SUCCEEDED", "CANCELLED"], backfill_cancelled=True) == "CANCELLED"

    assert backfill_outcome("PENDING", ["PENDING", "PENDING"]) is None
    assert backfill_outcome("PENDING", ["RUNNING", "PENDING"]) == "RUNNING"
    assert backfill_outcome("RUNNING", ["SUCCEEDED", "RUNNING"]) is None
    assert backfill_outcome("RUNNING", ["SUCCEEDED", "PENDING"]) is None  # not all planned
    assert backfill_outcome("RUNNING", ["SUCCEEDED", "SUCCEEDED"]) == "SUCCEEDED"
    assert backfill_outcome("PAUSED", ["SUCCEEDED", "FAILED"]) == "FAILED"
    assert backfill_outcome("CANCELLED", ["CANCELLED", "SUCCEEDED"]) is None
    for end in ("SUCCEEDED", "FAILED"):
        assert apply_transition("RUNNING", 3, Transition("RUNNING", end, 4))


def test_b9_counts_follow() -> None:
    assert outcome_counts(["SUCCEEDED", "FAILED", "RUNNING", "PENDING"], total=6) == {
        "total": 6,
        "pending": 3,
        "running": 1,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
    }


def test_b8_retry_failed_takes_the_unsucceeded_keys_unique_and_sorted() -> None:
    outcomes = [(_day(2), "FAILED"), (_day(1), "FAILED"), (_day(1), "FAILED"), (_day(3), "SUCCEEDED")]
    assert retry_failed_partitions("FAILED", outcomes) == (_day(1), _day(2))
    assert retry_failed_partitions("FAILED", [(_day(4), "CANCELLED")]) == (_day(4),)


@pytest.mark.parametrize("state", ["SUCCEEDED", "RUNNING", "CANCELLED", "PAUSED", "PENDING"])
def test_b8_parent_not_failed_conflicts(state: str) -> None:
    with pytest.raises(Conflict) as exc:
        retry_failed_partitions(state, [(_day(1), "FAILED")])
    assert exc.value.details["conflictType"] == "PARENT_NOT_FAILED"


def test_b3_chunk_requests_one_per_partition_selecting_every_asset() -> None:
    bf = backfill_id("t", "w", "k")
    keys = [_day(1), _day(2)]
    requests = chunk_run_requests(bf, 4, keys, ["raw.a", "raw.b"], {"team": "x"})
    assert [r.request_id for r in requests] == [f"chunk:{bf}:4:0", f"chunk:{bf}:4:1"]
    assert [r.run_key for r in requests] == [f"backfill:{bf}:chunk:4:0", f"backfill:{bf}:chunk:4:1"]
    assert [r.partition_key for r in requests] == keys
    assert all(r.selection == ("raw.a", "raw.b") for r in requests)
    assert dict(requests[0].source) == {"type": "backfill", "id": bf, "ref": f"{bf}:4"}
    # the fingerprint leaves the source out: the same request from TriggerRun is the same run (R1)
    assert requests[0].request_fingerprint == request_fingerprint(
        ["raw.a", "raw.b"], False, False, _day(1), {"team": "x"}
    )
