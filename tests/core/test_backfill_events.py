"""Backfill events in the codec (automation §5): round trips, idempotency keys, run-less, the trigger."""

from __future__ import annotations

import json

import pytest
from servo.core.errors import InvalidEvent
from servo.core.events import (
    BackfillChunkPlanned,
    BackfillCreated,
    BackfillStateChanged,
    RunTriggered,
    decode_event,
    encode_event,
    make_event,
)
from servo.core.run_source import trigger_view

BF = "bf_abcdefghijklmnopqrstuvwxyz"
EID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def _event(data: object):  # type: ignore[no-untyped-def]
    return make_event(
        data, event_id=EID, timestamp_ms=1_736_935_200_000, tenant_id="acme", workspace_id="prod"
    )  # type: ignore[arg-type]


PAYLOADS = [
    BackfillCreated(
        backfill_id=BF,
        assets=("raw.a", "raw.b"),
        selector={"range": {"start": "2025-01-01", "end": "2025-01-03"}},
        partition_keys=("date=d:2025-01-01", "date=d:2025-01-02", "date=d:2025-01-03"),
        chunk_size=2,
        max_concurrent_runs=4,
        labels={"team": "data"},
        parent_backfill_id="bf_parentparentparentparentpa",
    ),
    BackfillChunkPlanned(
        backfill_id=BF,
        chunk_index=1,
        partition_keys=("date=d:2025-01-03",),
        run_requests={f"chunk:{BF}:1:0": f"backfill:{BF}:chunk:1:0"},
    ),
    BackfillStateChanged(BF, "RUNNING", "PAUSED", 8, reason="ops"),
]


@pytest.mark.parametrize("data", PAYLOADS, ids=lambda d: type(d).__name__)
def test_backfill_events_round_trip_and_belong_to_no_run(data: object) -> None:
    event = _event(data)
    raw = encode_event(event)
    assert decode_event(raw) == event
    assert event.run_id is None
    assert None not in json.loads(raw)["data"].values()


def test_backfill_idempotency_keys_follow_the_table() -> None:
    assert [_event(d).idempotency_key for d in PAYLOADS] == [
        f"backfill_create:{BF}",
        f"backfill_chunk:{BF}:1",
        f"backfill_state:{BF}:8:PAUSED",
    ]


def test_a_chunk_names_its_id_and_its_requests_must_be_the_derived_ones() -> None:
    assert PAYLOADS[1].chunk_id == f"{BF}:1"  # type: ignore[union-attr]
    with pytest.raises(InvalidEvent) as caught:
        BackfillChunkPlanned(BF, 0, ("date=d:2025-01-01",), {f"chunk:{BF}:0:0": "some-other-key"})
    assert caught.value.details["field"] == "data.run_requests"


def test_bad_backfill_payloads_name_the_field() -> None:
    with pytest.raises(InvalidEvent) as caught:
        BackfillStateChanged(BF, "RUNNING", "SLEEPING", 2)
    assert caught.value.details["field"] == "data.to_state"
    with pytest.raises(InvalidEvent) as caught:
        BackfillCreated("nope", ("a",), {}, ("k",), 1, 1)
    assert caught.value.details["field"] == "data.backfill_id"


def test_a_backfill_run_carries_its_backfill_and_chunk_in_the_trigger() -> None:
    trigger = {"type": "backfill", "backfill": {"backfill_id": BF, "chunk_id": f"{BF}:0"}}
    event = _event(RunTriggered("01ARZ3NDEKTSV4RRFFQ69G5FAW", "01ARZ3NDEKTSV4RRFFQ69G5FAX", trigger, ("a",)))
    assert decode_event(encode_event(event)).data.trigger == trigger  # type: ignore[union-attr]
    assert trigger_view(trigger, None) == {"type": "backfill", "backfillId": BF, "chunkId": f"{BF}:0"}
