"""Appending events to a workspace's ledger: one create-if-absent object per event.

Re-appending identical bytes (a retried request) is a no-op; the same name with other bytes is a
conflict: nothing is ever overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from servo.core.errors import Conflict, InvalidEvent
from servo.core.events import (
    DispatchEnqueued,
    DispatchRequested,
    Event,
    TaskHeartbeat,
    TaskStarted,
    TimerEnqueued,
    TimerRequested,
    encode_event,
    ledger_object_name,
    make_encoded_event,
)
from servo.core.ids import ulid_time_ms
from servo.services._compaction_ledger import SWEEP_LOOKBACK_MS, written_events
from servo.services._io_pool import io_map
from servo.services.context import ServiceContext
from servo.store import create_once

logger = logging.getLogger("servo.ledger")

# contracts §5: an event id more than 5 minutes ahead of the server clock is refused.
MAX_FUTURE_SKEW_MS = 5 * 60 * 1000
# An event whose id is older than this when it is written (a repair writing the ids a runKey reserved
# long ago) may lie before every look-back by the time a compaction lists the ledger; half the sweep's
# look-back leaves the sweep a full tick to find anything younger.
LATE_WRITE_MS = SWEEP_LOOKBACK_MS // 2
# Events that record progress and unblock nothing: no decision of the controller waits on their
# publish (a dispatch is requested and enqueued in one pass; callbacks accept a dispatch not yet
# published). A write of only these may wait for company before it is published.
PROGRESS_EVENTS = (
    DispatchRequested,
    DispatchEnqueued,
    TaskStarted,
    TaskHeartbeat,
    TimerRequested,
    TimerEnqueued,
)


def append_events(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    events: Sequence[Event],
    *,
    await_publish: bool = True,
    encoded: Sequence[bytes] | None = None,
    urgent: bool | None = None,
) -> list[str]:
    """Write each event create-if-absent; returns the object names (relative to the workspace).

    ``await_publish=False`` tells the hook the caller will not read back what it wrote, so an
    embedded stack need not hold it until the publish. ``encoded``: the events' bytes as
    ``make_encoded_event`` gave them, one per event, so none is encoded twice. ``urgent`` tells it
    whether the publish unblocks anything; None: unless every event only records progress
    (``PROGRESS_EVENTS``).
    """
    store = ctx.workspace_store(tenant_id, workspace_id)
    now = ctx.clock_ms()
    for event in events:
        if event.tenant_id != tenant_id or event.workspace_id != workspace_id:
            raise InvalidEvent(f"event {event.event_id} belongs to another workspace")
        if ulid_time_ms(event.event_id) > now + MAX_FUTURE_SKEW_MS:
            raise InvalidEvent(f"event id {event.event_id} is more than 5 minutes in the future")
    if encoded is not None and len(encoded) != len(events):
        raise InvalidEvent("append_events takes one encoding per event, or none")
    pairs = list(zip(events, encoded if encoded is not None else [None] * len(events), strict=True))

    # A compaction in this process (the hook's) takes what was written here instead of reading it back.
    written = None
    if ctx.after_ledger_write is not None:
        written = written_events(ctx.workspace_cache(tenant_id, workspace_id))

    def write(pair: tuple[Event, bytes | None]) -> str:
        event, data = pair
        name = ledger_object_name(event.event_id)
        body = data if data is not None else encode_event(event)
        if not create_once(store, name, body):
            raise Conflict(f"ledger object {name} already exists with other content")
        if written is not None:
            written.note(name, event, body)
        return name

    # Objects are independent (one event each, create-if-absent), so a batch is written concurrently.
    names = io_map(write, pairs)
    late = [n for n, e in zip(names, events, strict=True) if ulid_time_ms(e.event_id) < now - LATE_WRITE_MS]
    if late:
        fold_written(ctx, tenant_id, workspace_id, late)
    if ctx.after_ledger_write is not None and names:
        if urgent is None:
            urgent = not all(isinstance(e.data, PROGRESS_EVENTS) for e in events)
        try:
            ctx.after_ledger_write(
                ctx, tenant_id, workspace_id, names, await_publish=await_publish, urgent=urgent
            )
        except Exception:
            # The events are durable: failing the request now would invite a retry that duplicates the
            # work. Compaction and side effects are re-driven by the sweep (and by finalize events).
            logger.exception("post-append compaction failed; the sweep will catch up")
    return names


def append_made(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    made: Sequence[tuple[Event, bytes]],
    *,
    await_publish: bool = True,
    urgent: bool | None = None,
) -> list[str]:
    """Append events as ``make_encoded_event`` made them, each written with the bytes it was made with
    (``append_events`` for the keywords)."""
    return append_events(
        ctx,
        tenant_id,
        workspace_id,
        [e for e, _ in made],
        await_publish=await_publish,
        encoded=[b for _, b in made],
        urgent=urgent,
    )


def hasten(ctx: ServiceContext, tenant_id: str, workspace_id: str, names: Sequence[str]) -> None:
    """Hand over again, as urgent, ledger objects handed over as progress: their publish turned out to
    unblock something (the run's end, a dispatch left to the compactor)."""
    if ctx.after_ledger_write is not None and names:
        ctx.after_ledger_write(ctx, tenant_id, workspace_id, names, await_publish=False, urgent=True)


def stamp(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, data: Any, now: int | None = None
) -> tuple[Event, bytes]:
    """``data`` as an event of the workspace with a fresh id at ``now`` (by default the clock's), and
    the bytes it is written as (``append_made``)."""
    now = ctx.clock_ms() if now is None else now
    return make_encoded_event(
        data, event_id=ctx.ids.new(now), timestamp_ms=now, tenant_id=tenant_id, workspace_id=workspace_id
    )


def fold_written(ctx: ServiceContext, tenant_id: str, workspace_id: str, names: Sequence[str]) -> None:
    """Fold ledger objects with old ids before answering, and act on them.

    A finalize event can be lost, and the sweep lists only a look-back window before the watermark:
    an object whose id is older than that would never be folded. So its writer hands it over itself,
    and fails if that fails (the objects are durable; the client's retry hands them over again).
    """
    from servo.services.orchestrate import compact_and_act

    compact_and_act(ctx, tenant_id, workspace_id, hint=names)
