"""The schedule fold (automation §5, §6.1): schedule events -> ``schedules``, ``schedule_ticks`` and
``run_requests`` rows.

Every field merges by a rule that ignores order and repetition (a max or a min over event ids and
versions), so any permutation, duplication or batching of one set of events gives the same rows, and a
rebuild from the ledger equals the live projection (§6.8). A row may be seen first through a status
change or a tick (a skewed writer); it shows once its definition has been folded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from servo.core._automation_events import (
    RunRequestResolved,
    ScheduleDefinitionRemoved,
    ScheduleDefinitionUpserted,
    ScheduleStatusChanged,
    ScheduleTicked,
)
from servo.core.backfill_fold import (
    BackfillChunkRow,
    BackfillRow,
    chunk_requests,
    expire_backfills,
    fold_backfill_event,
    settle_chunks,
)
from servo.core.backfills import TERMINAL_STATES
from servo.core.canonical_json import canonical_bytes
from servo.core.events import Event

__all__ = [
    "RETENTION_MS",
    "RunRequestRow",
    "ScheduleRow",
    "ScheduleState",
    "ScheduleTickRow",
    "expire_schedule_history",
    "fold_schedules",
    "settle_backfills",
]

# §5: ticks and resolved requests are kept 30 days.
RETENTION_MS = 30 * 86_400_000


def _json(value: Any) -> str:
    return canonical_bytes(value).decode("utf-8")


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One schedule; ``definition`` is the canonical JSON of its manifest entry (None until folded)."""

    schedule_id: str
    definition: str | None = None
    definition_hash: str | None = None
    definition_version: int = 0
    definition_event_id: str | None = None
    first_event_id: str | None = None
    first_seen_at: int | None = None
    default_enabled: bool | None = None  # of the first definition: defaultEnabled applies on first sight only
    last_upsert_event_id: str | None = None
    removed_event_id: str | None = None
    status_version: int = 0
    status_event_id: str | None = None
    status_enabled: bool | None = None
    last_scheduled_at: int | None = None  # epoch ms of the newest tick
    row_version: str = ""

    @property
    def enabled(self) -> bool:
        if self.status_event_id is not None:
            return bool(self.status_enabled)
        return bool(self.default_enabled)

    @property
    def removed(self) -> bool:
        return self.removed_event_id is not None and self.removed_event_id > (self.last_upsert_event_id or "")

    @property
    def status(self) -> str:
        if self.removed:
            return "REMOVED"
        return "ACTIVE" if self.enabled else "PAUSED"

    def definition_json(self) -> dict[str, Any] | None:
        return None if self.definition is None else json.loads(self.definition)


@dataclass(frozen=True, slots=True)
class ScheduleTickRow:
    tick_id: str
    schedule_id: str
    scheduled_at: int
    evaluated_at: int
    status: str
    definition_version: int
    reason: str | None
    request_id: str | None
    run_key: str | None
    request_fingerprint: str | None
    selection: str | None  # JSON list
    partition_key: str | None
    labels: str | None  # JSON object
    source: str | None  # JSON object {type, id, ref}
    row_version: str = ""


@dataclass(frozen=True, slots=True)
class RunRequestRow:
    request_id: str
    outcome: str
    run_key: str
    run_id: str | None
    request_fingerprint: str | None
    existing_fingerprint: str | None
    message: str | None
    resolved_at: int
    row_version: str = ""


@dataclass(slots=True)
class ScheduleState:
    schedules: dict[str, ScheduleRow] = field(default_factory=dict)
    ticks: dict[str, ScheduleTickRow] = field(default_factory=dict)
    requests: dict[str, RunRequestRow] = field(default_factory=dict)
    # Backfills share this projection: their chunks' requests resolve into ``requests`` (§6.3).
    backfills: dict[str, BackfillRow] = field(default_factory=dict)
    chunks: dict[str, BackfillChunkRow] = field(default_factory=dict)

    def copy(self) -> ScheduleState:
        return ScheduleState(
            dict(self.schedules),
            dict(self.ticks),
            dict(self.requests),
            dict(self.backfills),
            dict(self.chunks),
        )

    def visible_schedules(self) -> list[ScheduleRow]:
        return [self.schedules[k] for k in sorted(self.schedules) if self.schedules[k].definition is not None]


def _older(a: str | None, b: str) -> bool:
    return a is None or b < a


def _upsert(row: ScheduleRow, event: Event, data: ScheduleDefinitionUpserted) -> ScheduleRow:
    changes: dict[str, Any] = {"last_upsert_event_id": max(row.last_upsert_event_id or "", event.event_id)}
    if row.definition_event_id is None or (data.definition_version, event.event_id) > (
        row.definition_version,
        row.definition_event_id,
    ):
        changes |= {
            "definition": _json(data.definition),
            "definition_hash": data.definition_hash,
            "definition_version": data.definition_version,
            "definition_event_id": event.event_id,
        }
    if _older(row.first_event_id, event.event_id):
        changes |= {
            "first_event_id": event.event_id,
            "first_seen_at": event.timestamp_ms,
            "default_enabled": data.definition.get("defaultEnabled") is True,
        }
    return replace(row, **changes)


def _status(row: ScheduleRow, event: Event, data: ScheduleStatusChanged) -> ScheduleRow:
    if row.status_event_id is not None and (data.status_version, event.event_id) <= (
        row.status_version,
        row.status_event_id,
    ):
        return row
    return replace(
        row, status_version=data.status_version, status_event_id=event.event_id, status_enabled=data.enabled
    )


def _tick_row(event: Event, data: ScheduleTicked) -> ScheduleTickRow:
    request: Mapping[str, Any] = data.run_request or {}

    def text(name: str) -> str | None:
        value = request.get(name)
        return value if isinstance(value, str) else None

    def obj(name: str) -> str | None:
        return _json(request[name]) if name in request else None

    return ScheduleTickRow(
        tick_id=data.tick_id,
        schedule_id=data.schedule_id,
        scheduled_at=data.scheduled_for,
        evaluated_at=event.timestamp_ms,
        status=data.status,
        definition_version=data.definition_version,
        reason=data.reason,
        request_id=text("request_id"),
        run_key=text("run_key"),
        request_fingerprint=text("request_fingerprint"),
        selection=obj("selection"),
        partition_key=text("partition_key"),
        labels=obj("labels"),
        source=obj("source"),
        row_version=event.event_id,
    )


def _request_row(event: Event, data: RunRequestResolved) -> RunRequestRow:
    return RunRequestRow(
        request_id=data.request_id,
        outcome=data.outcome,
        run_key=data.run_key,
        run_id=data.run_id,
        request_fingerprint=data.request_fingerprint,
        existing_fingerprint=data.existing_fingerprint,
        message=data.message,
        resolved_at=event.timestamp_ms,
        row_version=event.event_id,
    )


def fold_schedules(state: ScheduleState, events: Iterable[Event]) -> ScheduleState:
    """Fold schedule events (others are ignored) into a new state; ``state`` is not modified."""
    result = state.copy()
    for event in events:
        data = event.data
        fold_backfill_event(result.backfills, result.chunks, event)
        if isinstance(data, ScheduleTicked):
            # One tick id is one tick (S12): a duplicate written later loses to the first.
            seen = result.ticks.get(data.tick_id)
            if seen is None or event.event_id < seen.row_version:
                result.ticks[data.tick_id] = _tick_row(event, data)
        elif isinstance(data, RunRequestResolved):
            done = result.requests.get(data.request_id)
            if done is None or event.event_id < done.row_version:
                result.requests[data.request_id] = _request_row(event, data)
        if not isinstance(
            data,
            ScheduleDefinitionUpserted | ScheduleDefinitionRemoved | ScheduleStatusChanged | ScheduleTicked,
        ):
            continue
        row = result.schedules.get(data.schedule_id) or ScheduleRow(data.schedule_id)
        if isinstance(data, ScheduleDefinitionUpserted):
            row = _upsert(row, event, data)
        elif isinstance(data, ScheduleDefinitionRemoved):
            row = replace(row, removed_event_id=max(row.removed_event_id or "", event.event_id))
        elif isinstance(data, ScheduleStatusChanged):
            row = _status(row, event, data)
        else:
            row = replace(row, last_scheduled_at=max(row.last_scheduled_at or 0, data.scheduled_for))
        result.schedules[data.schedule_id] = replace(row, row_version=max(row.row_version, event.event_id))
    return result


def settle_backfills(state: ScheduleState, run_state: Callable[[str], str | None]) -> ScheduleState:
    """``state`` with its backfill chunks settled from their requests here and their runs' public states
    (``run_state(run_id)``, None while unknown); ``state`` itself when nothing changed."""

    def request_status(request_id: str) -> tuple[str, str | None] | None:
        row = state.requests.get(request_id)
        return None if row is None else (row.outcome, row.run_id)

    chunks = settle_chunks(state.backfills, state.chunks, request_status, run_state)
    if chunks == state.chunks:
        return state
    out = state.copy()
    out.chunks = chunks
    return out


def _open_chunk_requests(state: ScheduleState) -> set[str]:
    """The request ids of every planned chunk that has not ended (as last settled)."""
    return {
        request_id
        for chunk in state.chunks.values()
        if chunk.planned and chunk.state not in TERMINAL_STATES
        for request_id, _, _ in chunk_requests(chunk)
    }


def expire_schedule_history(state: ScheduleState, now_ms: int, keep_ms: int = RETENTION_MS) -> ScheduleState:
    """``state`` without the history past its retention (§5); ``state`` is not modified.

    A resolved request goes once resolved more than ``keep_ms`` ago, unless its backfill chunk has not
    ended (the chunk settles from it while its runs go on); a tick once evaluated before that and its request
    (if any) is gone, so a tick whose run is still owed stays until the sweep has submitted it. Schedule
    rows keep ``last_scheduled_at``, so an expired tick is never due again. A backfill goes 90 days after
    it ended (``expire_backfills``); its chunks keep the outcomes settled while their requests were here.
    """
    cutoff = now_ms - keep_ms
    old = [k for k, r in state.requests.items() if r.resolved_at < cutoff]
    kept = _open_chunk_requests(state) if old else set()  # computed only when something may go
    requests = {k: r for k, r in state.requests.items() if r.resolved_at >= cutoff or k in kept}
    ticks = {
        k: t
        for k, t in state.ticks.items()
        if t.evaluated_at >= cutoff
        or (t.request_id is not None and (t.request_id in requests or t.request_id not in state.requests))
    }
    backfills, chunks = expire_backfills(state.backfills, state.chunks, now_ms)
    return ScheduleState(dict(state.schedules), ticks, requests, backfills, chunks)
