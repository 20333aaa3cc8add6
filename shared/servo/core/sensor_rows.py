"""Rows of the sensor tables (automation §5): ``sensors``, ``sensor_evaluations``, ``sensor_inbox``, each
derived from ``sensor_view`` over the folded sensor events, so a rebuild from the ledger gives the same rows.

The projection also keeps what the view is computed from: the sensor events themselves (the fold needs
the whole set, its compare-and-set is a function of it) and the ``run:`` items of run-status sensors,
which no sensor event carries (they come from the run fold, §6.2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from servo.core._sensor_events import SENSOR_EVENT_TYPES
from servo.core.canonical_json import canonical_bytes
from servo.core.events import Event, decode_event, encode_event
from servo.core.sensor_fold import SensorLog, SensorState, SensorView, fold_sensors, sensor_view


def _json(value: Any) -> str:
    return canonical_bytes(value).decode("utf-8")


@dataclass(frozen=True, slots=True)
class SensorEventRow:
    """One sensor event as the ledger holds it (canonical JSON)."""

    event_id: str
    sensor_id: str
    body: str


@dataclass(frozen=True, slots=True)
class SensorRunItemRow:
    """A run that turned terminal while a run-status sensor watched it: item ``run:{run_id}``."""

    sensor_id: str
    item_id: str
    run_id: str
    run_state: str
    arrived_id: str  # orders the item among the sensor's others (an event id of the run's ending)


@dataclass(frozen=True, slots=True)
class SensorRow:
    sensor_id: str
    definition: str | None  # canonical JSON of the manifest entry
    enabled: bool
    status: str  # ACTIVE/PAUSED/REMOVED
    definition_version: int
    state_version: int
    cursor: str | None
    last_evaluation_at: int | None
    last_evaluation_status: str | None
    last_error_at: int | None
    in_flight_evaluation_id: str | None
    pending_items: int
    first_seen_at: int | None
    row_version: str = ""

    def definition_json(self) -> dict[str, Any] | None:
        return None if self.definition is None else json.loads(self.definition)


@dataclass(frozen=True, slots=True)
class SensorEvaluationRow:
    evaluation_id: str
    sensor_id: str
    trigger: str
    expected_state_version: int
    status: str
    requested_at: int | None
    reported_at: int | None
    not_before_at: int | None
    item_ids: str  # JSON list
    run_requests: str | None  # JSON list of the result's requests (request_id, run_key, ...)
    dropped_run_requests: int
    reason: str | None
    error: str | None
    cursor_after: str | None
    row_version: str = ""


@dataclass(frozen=True, slots=True)
class SensorInboxRow:
    sensor_id: str
    item_id: str
    status: str  # PENDING/DONE/SKIPPED/FAILED
    error_count: int
    received_event_id: str
    row_version: str = ""


@dataclass(slots=True)
class SensorTables:
    """The projection's state: the events and run items it folds, and the views derived from them."""

    events: dict[str, Event] = field(default_factory=dict)
    run_items: dict[tuple[str, str], SensorRunItemRow] = field(default_factory=dict)
    log: SensorState = field(default_factory=SensorState)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SensorTables)
            and self.events.keys() == other.events.keys()
            and self.run_items == other.run_items
        )

    @classmethod
    def from_rows(
        cls, events: Iterable[SensorEventRow], run_items: Iterable[SensorRunItemRow]
    ) -> SensorTables:
        return (
            cls().with_events(decode_event(r.body.encode("utf-8")) for r in events).with_run_items(run_items)
        )

    def with_events(self, events: Iterable[Event]) -> SensorTables:
        new = {e.event_id: e for e in events if e.event_id not in self.events and _is_sensor(e.data)}
        if not new:
            return self
        return SensorTables(
            {**self.events, **new}, dict(self.run_items), fold_sensors(self.log, new.values())
        )

    def with_run_items(self, items: Iterable[SensorRunItemRow]) -> SensorTables:
        added = {(i.sensor_id, i.item_id): i for i in items if (i.sensor_id, i.item_id) not in self.run_items}
        if not added:
            return self
        return SensorTables(dict(self.events), {**self.run_items, **added}, self.log)

    def logs(self) -> list[SensorLog]:
        return [self.log.sensors[k] for k in sorted(self.log.sensors)]

    def run_items_of(self, sensor_id: str) -> dict[str, str]:
        return {i.item_id: i.arrived_id for (sid, _), i in self.run_items.items() if sid == sensor_id}

    def view(self, sensor_id: str) -> SensorView | None:
        log = self.log.sensors.get(sensor_id)
        return None if log is None else sensor_view(log, self.run_items_of(sensor_id))


def _is_sensor(data: Any) -> bool:
    return isinstance(data, SENSOR_EVENT_TYPES)


def _sensor_of(event: Event) -> str:
    sensor_id: str = getattr(event.data, "sensor_id")  # noqa: B009 - every kept event is a sensor event
    return sensor_id


def _row_version(log: SensorLog) -> str:
    ids = [log.definition_event_id or "", log.removed_event_id]
    for seen in (log.statuses, log.messages, log.requested, log.results):
        ids.extend(s.event_id for s in seen.values())
    return max(ids)


def in_flight(view: SensorView) -> str | None:
    pending = [
        e
        for e in view.evaluations.values()
        if e.status == "PENDING" and e.trigger != "MANUAL" and e.expected_state_version == view.state_version
    ]
    return max(pending, key=lambda e: e.evaluation_id).evaluation_id if pending else None


def sensor_row(log: SensorLog, view: SensorView) -> SensorRow:
    return SensorRow(
        sensor_id=log.sensor_id,
        definition=log.definition,
        enabled=view.enabled,
        status="REMOVED" if view.removed else "ACTIVE" if view.enabled else "PAUSED",
        definition_version=log.definition_version,
        state_version=view.state_version,
        cursor=view.cursor,
        last_evaluation_at=view.last_evaluation_at,
        last_evaluation_status=view.last_evaluation_status,
        last_error_at=view.last_error_at,
        in_flight_evaluation_id=in_flight(view),
        pending_items=len(view.pending_items()),
        first_seen_at=log.first_seen_at,
        row_version=_row_version(log),
    )


def evaluation_rows(log: SensorLog, view: SensorView) -> list[SensorEvaluationRow]:
    rows = []
    for eid in sorted(view.evaluations):
        e = view.evaluations[eid]
        answer = log.results.get(eid)
        asked = log.requested.get(eid)
        result = answer.data if answer is not None else None
        rows.append(
            SensorEvaluationRow(
                evaluation_id=eid,
                sensor_id=log.sensor_id,
                trigger=e.trigger,
                expected_state_version=e.expected_state_version,
                status=e.status,
                requested_at=e.requested_at,
                reported_at=e.reported_at,
                not_before_at=e.not_before,
                item_ids=_json(list(e.item_ids)),
                run_requests=_json(list(result.run_requests)) if result and result.run_requests else None,
                dropped_run_requests=e.dropped_run_requests,
                reason=None if result is None else result.reason,
                error=None if result is None else result.error,
                cursor_after=result.cursor if result is not None and result.cursor_updated else None,
                row_version=max(s.event_id for s in (answer, asked) if s is not None),
            )
        )
    return rows


def inbox_rows(sensor_id: str, view: SensorView) -> list[SensorInboxRow]:
    return [
        SensorInboxRow(
            sensor_id, i.item_id, i.status, i.error_count, i.received_event_id, i.received_event_id
        )
        for i in sorted(view.items.values(), key=lambda i: i.item_id)
    ]


def table_rows(tables: SensorTables) -> Mapping[str, list[Any]]:
    """Every table's rows, sorted by key."""
    sensors, evaluations, inbox = [], [], []
    for log in tables.logs():
        view = sensor_view(log, tables.run_items_of(log.sensor_id))
        sensors.append(sensor_row(log, view))
        evaluations.extend(evaluation_rows(log, view))
        inbox.extend(inbox_rows(log.sensor_id, view))
    return {
        "sensor_events": [
            SensorEventRow(
                eid, _sensor_of(tables.events[eid]), encode_event(tables.events[eid]).decode("utf-8")
            )
            for eid in sorted(tables.events)
        ],
        "sensor_run_items": [tables.run_items[k] for k in sorted(tables.run_items)],
        "sensors": sensors,
        "sensor_evaluations": sorted(evaluations, key=lambda r: r.evaluation_id),
        "sensor_inbox": inbox,
    }
