"""An event is encoded once: ``make_encoded_event`` gives the bytes that proved it writable, and
``append_events`` writes those bytes instead of encoding the event a second time (issue 21: two
encodings of every callback's event were about 0.1 ms a task)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from servo.core.errors import InvalidEvent
from servo.core.events import Event, TaskStarted, decode_event, encode_event, make_encoded_event, make_event
from servo.services.ledger import append_events

from tests.support.context import make_context

T, WS = "acme", "prod"
RUN = "01JAAAAAAAAAAAAAAAAAAAAAAA"


def _started(ctx: object) -> TaskStarted:
    return TaskStarted(run_id=RUN, task_key="ns.a", attempt=1, attempt_id="att_1", worker_id="w-1")


def _made(ctx: Any, now: int) -> tuple[Event, bytes]:
    return make_encoded_event(
        _started(ctx), event_id=ctx.ids.new(now), timestamp_ms=now, tenant_id=T, workspace_id=WS
    )


def test_the_bytes_given_with_an_event_are_what_the_ledger_holds(tmp_path: Path) -> None:
    ctx, clock, _ = make_context(tmp_path, compact=False)
    now = clock()
    event, data = make_encoded_event(
        _started(ctx), event_id=ctx.ids.new(now), timestamp_ms=now, tenant_id=T, workspace_id=WS
    )
    assert data == encode_event(event)
    assert (
        make_event(_started(ctx), event_id=event.event_id, timestamp_ms=now, tenant_id=T, workspace_id=WS)
        == event
    )
    [name] = append_events(ctx, T, WS, [event], encoded=[data])
    stored = ctx.workspace_store(T, WS).get(name)
    assert stored is not None and stored.data == data
    assert decode_event(stored.data) == event


def test_bytes_for_some_events_only_are_refused(tmp_path: Path) -> None:
    ctx, clock, _ = make_context(tmp_path, compact=False)
    now = clock()
    made = [
        make_encoded_event(
            _started(ctx), event_id=ctx.ids.new(now), timestamp_ms=now, tenant_id=T, workspace_id=WS
        )
        for _ in range(2)
    ]
    with pytest.raises(InvalidEvent, match="one encoding per event"):
        append_events(ctx, T, WS, [e for e, _ in made], encoded=[made[0][1]])
    assert ctx.workspace_store(T, WS).list("ledger/") == []
