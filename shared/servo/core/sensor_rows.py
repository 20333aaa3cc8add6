"""Rows of the sensor tables (automation §5): ``sensors``, ``sensor_evaluations``, ``sensor_inbox``, each
derived from ``sensor_view`` over the folded sensor events, so a rebuild from the ledger gives the same rows.

The projection also keeps what the view is computed from: each sensor's checkpoint (the settled start of
its chain, ``servo.core.sensor_retention``), the sensor events after it (the compare-and-set is a
function of their set) and the ``run:`` items of run-status sensors, which no sensor event carries (they
come from the run fold, §6.2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from servo.core._sensor_events import (
    SENSOR_EVENT_TYPES,
    SensorDefinitionRemoved,
    SensorDefinitionUpserted,
    SensorEvaluated,
    SensorEvaluationRequested,
    SensorMessageReceived,
)
from servo.core.canonical_json import canonical_bytes
from servo.core.events import Event, decode_event, encode_event
from servo.core.ids import ulid_time_ms
from servo.core.sensor_fold import (
    SensorCheckpoint,
    SensorLog,
    SensorState,
    SensorView,
    fold_sensors,
    resolved_sensor_of,
    sensor_view,
)
from servo.core.sensor_retention import (
    DUPLICATE_WINDOW_MS,
    checkpoint_from_json,
    checkpoint_json,
    checkpoint_sensor,
)


def _json(value: Any) -> str:
    return canonical_bytes(value).decode("utf-8")


@dataclass(frozen=True, slots=True)
class SensorEventRow:
    """One sensor event as the ledger holds it (canonical JSON)."""

    event_id: str
    sensor_id: str
    body: str


@dataclass(frozen=True, slots=True)
class SensorCheckpointRow:
    """One sensor's checkpoint (canonical JSON): its history before ``boundary`` folded in."""

    sensor_id: str
    boundary: str
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
    """The projection's state: the checkpoints, events and run items it folds, and the views derived
    from them."""

    events: dict[str, Event] = field(default_factory=dict)
    run_items: dict[tuple[str, str], SensorRunItemRow] = field(default_factory=dict)
    log: SensorState = field(default_factory=SensorState)
    # What the checkpoints let go of within the retention, as finished rows (§5: 30 days): the parts of
    # evaluations (keyed by ``archive_key``) and the inbox items whose events went.
    archived: dict[str, SensorEvaluationRow] = field(default_factory=dict)
    archived_inbox: dict[tuple[str, str], SensorInboxRow] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SensorTables)
            and self.events.keys() == other.events.keys()
            and self.run_items == other.run_items
            and self.checkpoints() == other.checkpoints()
            and self.archived == other.archived
            and self.archived_inbox == other.archived_inbox
        )

    @classmethod
    def from_rows(
        cls,
        events: Iterable[SensorEventRow],
        run_items: Iterable[SensorRunItemRow],
        checkpoints: Iterable[SensorCheckpointRow] = (),
        archived: Iterable[SensorEvaluationRow] = (),
        archived_inbox: Iterable[SensorInboxRow] = (),
    ) -> SensorTables:
        """The state from its rows; a projection written before checkpoints existed has none (every
        sensor starts at version 0, as it did)."""
        tables = cls().with_events(decode_event(r.body.encode("utf-8")) for r in events)
        tables = tables.with_run_items(run_items)
        # The kept events and items are taken first: the checkpoint's boundary only turns away newer
        # arrivals (a pending item older than it is kept).
        for row in checkpoints:
            log = tables.log.sensors.get(row.sensor_id) or SensorLog(row.sensor_id)
            tables.log.sensors[row.sensor_id] = replace(log, base=checkpoint_from_json(row.body))
        tables.archived = {archive_key(r): r for r in archived}
        tables.archived_inbox = {(r.sensor_id, r.item_id): r for r in archived_inbox}
        return tables

    def with_events(self, events: Iterable[Event]) -> SensorTables:
        new = {
            e.event_id: e
            for e in events
            if e.event_id not in self.events and _sensor_of(e) is not None and not self._copy_let_go(e)
        }
        if not new:
            return self
        log = fold_sensors(self.log, new.values())
        # An event older than its sensor's checkpoint is not kept: the fold turned it away.
        new = {k: e for k, e in new.items() if _kept(log, e)}
        return replace(self, events={**self.events, **new}, run_items=dict(self.run_items), log=log)

    def with_run_items(self, items: Iterable[SensorRunItemRow]) -> SensorTables:
        # An item older than its sensor's checkpoint is folded in or went with its history, as an event.
        added = {
            (i.sensor_id, i.item_id): i
            for i in items
            if (i.sensor_id, i.item_id) not in self.run_items and i.arrived_id >= self._boundary(i.sensor_id)
        }
        if not added:
            return self
        return replace(self, events=dict(self.events), run_items={**self.run_items, **added})

    def with_checkpoints(self, boundary: str, expire_before: str = "") -> SensorTables:
        """Every sensor's history settled before ``boundary`` (an event id) folded into its checkpoint;
        the events and run items it came from go, what they showed is kept as finished rows, and those
        older than ``expire_before`` go (§5 retention)."""
        tables, cut = self._cut(boundary, frozenset())
        while cut:  # a copy that counts on its own once its first copy went may be that old itself
            tables, cut = tables._set_aside_copies(boundary, cut)
        archived = {k: r for k, r in tables.archived.items() if r.row_version >= expire_before}
        archived_inbox = {k: r for k, r in tables.archived_inbox.items() if r.row_version >= expire_before}
        if (
            archived.keys() == tables.archived.keys()
            and archived_inbox.keys() == tables.archived_inbox.keys()
        ):
            return tables
        return replace(tables, archived=archived, archived_inbox=archived_inbox)

    def _cut(self, boundary: str, again: frozenset[str]) -> tuple[SensorTables, frozenset[str]]:
        """One pass of the cut (``again``: sensors cut once more at the boundary they have) and the
        sensors it changed."""
        changed: dict[str, SensorLog] = {}
        run_items = dict(self.run_items)
        archived = dict(self.archived)
        archived_inbox = dict(self.archived_inbox)
        for sensor_id, log in self.log.sensors.items():
            items = self.run_items_of(sensor_id)
            new_log, gone = checkpoint_sensor(log, boundary, items, again=sensor_id in again)
            if new_log is not log:
                changed[sensor_id] = new_log
                _archive(log, items, new_log, gone, archived, archived_inbox)
                for item_id in gone:
                    del run_items[(sensor_id, item_id)]
        if not changed:
            return self, frozenset()
        state = SensorState({**self.log.sensors, **changed})
        return SensorTables(dict(self.events), run_items, state, archived, archived_inbox), frozenset(changed)

    def _set_aside_copies(self, boundary: str, cut: frozenset[str]) -> tuple[SensorTables, frozenset[str]]:
        """The events of the sensors just ``cut`` that their logs do not hold (later copies of a key):
        a duplicate goes (``DUPLICATE_WINDOW_MS``) once older than the boundary or once its first copy
        went, a copy of a let-go claim or outcome goes once older than the boundary, and a copy past
        the window of a first copy that went counts on its own (folded; if older than the boundary, its
        sensor is cut again: the sensors cut again are the second value)."""
        referenced = set().union(*(_event_ids(self.log.sensors[s]) for s in cut))
        events = dict(self.events)
        spare: list[Event] = []
        for event_id, event in self.events.items():
            if (
                event_id in referenced
                or isinstance(event.data, DEFINITION_TYPES)
                or _sensor_of(event) not in cut
            ):
                continue
            first, held = self._first_copy(event)
            if first is None:  # a claim or an outcome: settled once older than the boundary
                if event_id < boundary:
                    del events[event_id]
                else:
                    spare.append(event)
            elif held:  # set aside behind the copy the log holds
                if event_id < boundary and _duplicate(first, event_id):
                    del events[event_id]
            elif first == event_id or _duplicate(first, event_id):  # it went, or a duplicate of it
                del events[event_id]
            else:
                spare.append(event)
        tables = SensorTables(
            events,
            self.run_items,
            fold_sensors(self.log, spare, settled=True),
            self.archived,
            self.archived_inbox,
        )
        again = frozenset(_sensor_of(e) or "" for e in spare if e.event_id < boundary)
        return tables._cut(boundary, again) if again else (tables, frozenset())

    def _first_copy(self, event: Event) -> tuple[str | None, bool]:
        """The event id of the first copy of the event's key, and whether the log holds it (else a
        finished row remembers it, or "": none does). None for a claim or an outcome, which no finished
        row remembers."""
        data = event.data
        log = self.log.sensors.get(_sensor_of(event) or "") or SensorLog("")
        if isinstance(data, SensorMessageReceived):
            held = log.messages.get(data.message_id)
            row = self.archived_inbox.get((data.sensor_id, data.item_id))
            remembered = "" if row is None else row.received_event_id
        elif isinstance(data, SensorEvaluationRequested | SensorEvaluated):
            asked = isinstance(data, SensorEvaluationRequested)
            held = (log.requested if asked else log.results).get(data.evaluation_id)
            part = self.archived.get(f"{data.evaluation_id}\n{'request' if asked else 'result'}")
            remembered = "" if part is None else part.row_version
        else:
            return None, False
        return (remembered, False) if held is None else (held.event_id, True)

    def _copy_let_go(self, event: Event) -> bool:
        """Whether the event is a duplicate of a first copy a cut let go (its finished row remembers it)."""
        first, held = self._first_copy(event)
        return not held and bool(first) and _duplicate(first or "", event.event_id)

    def _boundary(self, sensor_id: str) -> str:
        log = self.log.sensors.get(sensor_id)
        return "" if log is None else log.base.boundary

    def checkpoints(self) -> dict[str, SensorCheckpoint]:
        return {k: log.base for k, log in self.log.sensors.items() if log.base != SensorCheckpoint()}

    def logs(self) -> list[SensorLog]:
        return [self.log.sensors[k] for k in sorted(self.log.sensors)]

    def run_items_of(self, sensor_id: str) -> dict[str, str]:
        return {i.item_id: i.arrived_id for (sid, _), i in self.run_items.items() if sid == sensor_id}

    def view(self, sensor_id: str) -> SensorView | None:
        log = self.log.sensors.get(sensor_id)
        return None if log is None else sensor_view(log, self.run_items_of(sensor_id))

    def evaluation_rows(self, sensor_id: str) -> list[SensorEvaluationRow]:
        """The sensor's evaluations of the last 30 days: those its events show, completed by the parts
        its checkpoint let go."""
        log = self.log.sensors.get(sensor_id)
        rows = [] if log is None else evaluation_rows(log, sensor_view(log, self.run_items_of(sensor_id)))
        return _merged(rows, [r for r in self.archived.values() if r.sensor_id == sensor_id])

    def knows_message(self, sensor_id: str, message_id: str) -> bool:
        """Whether a push message id was received within the retention (a redelivery is a duplicate)."""
        log = self.log.sensors.get(sensor_id)
        return (log is not None and message_id in log.messages) or (
            sensor_id,
            f"msg:{message_id}",
        ) in self.archived_inbox


DEFINITION_TYPES = (SensorDefinitionUpserted, SensorDefinitionRemoved)


def _sensor_of(event: Event) -> str | None:
    """The sensor an event belongs to (a sensor event, or the outcome of a sensor's run request)."""
    sensor_id: str | None = getattr(event.data, "sensor_id", None)
    if sensor_id is not None and isinstance(event.data, SENSOR_EVENT_TYPES):
        return sensor_id
    return resolved_sensor_of(event.data)


def _duplicate(first: str, copy: str) -> bool:
    """Whether ``copy`` is a duplicate of ``first``, the first copy of its key (``DUPLICATE_WINDOW_MS``)."""
    return first < copy and ulid_time_ms(copy) - ulid_time_ms(first) <= DUPLICATE_WINDOW_MS


def _kept(log: SensorState, event: Event) -> bool:
    sensor = log.sensors.get(_sensor_of(event) or "")
    return (
        sensor is None or isinstance(event.data, DEFINITION_TYPES) or event.event_id >= sensor.base.boundary
    )


def archive_key(row: SensorEvaluationRow) -> str:
    """An archived part's key: an evaluation's request and its result may go at different cuts."""
    return f"{row.evaluation_id}\n{'result' if row.reported_at is not None else 'request'}"


def _archive(
    before: SensorLog,
    run_items: Mapping[str, str],
    after: SensorLog,
    gone: frozenset[str],
    archived: dict[str, SensorEvaluationRow],
    archived_inbox: dict[tuple[str, str], SensorInboxRow],
) -> None:
    """Keep, as finished rows, what the events ``before`` had and ``after`` lets go: each evaluation's
    request and result apart (their fields are disjoint, so the parts merge to the row one cut would
    have given), and each inbox item as it finished. The first archived stays (it was final then)."""
    view = sensor_view(before, run_items)
    for row in evaluation_rows(before, view):
        eid = row.evaluation_id
        asked, answer = before.requested.get(eid), before.results.get(eid)
        if asked is not None and eid not in after.requested:
            part = replace(
                row,
                status="EXPIRED",
                reported_at=None,
                run_requests=None,
                dropped_run_requests=0,
                reason=None,
                error=None,
                cursor_after=None,
                trigger=asked.data.trigger,
                expected_state_version=asked.data.expected_state_version,
                item_ids=_json(list(asked.data.item_ids)),
                row_version=asked.event_id,
            )
            _remember(archived, archive_key(part), part)
        if answer is not None and eid not in after.results:
            part = replace(row, requested_at=None, not_before_at=None, row_version=answer.event_id)
            _remember(archived, archive_key(part), part)
    kept = {m.data.item_id for m in after.messages.values()}
    for item in inbox_rows(before.sensor_id, view):
        if item.item_id in gone or (item.item_id.startswith("msg:") and item.item_id not in kept):
            _remember(archived_inbox, (item.sensor_id, item.item_id), item)


def _remember(rows: dict[Any, Any], key: Any, row: Any) -> None:
    """Keep the first finished row of a key (it was final then), unless a later copy of the key, past
    the duplicate window, counted on its own and went in turn."""
    old = rows.get(key)
    if old is None or row.row_version > old.row_version:
        rows[key] = row


def _merged(
    derived: list[SensorEvaluationRow], parts: list[SensorEvaluationRow]
) -> list[SensorEvaluationRow]:
    """The evaluation rows: each one its events show, with the request's fields (when and not before)
    and the result's (everything else) of the parts let go."""
    by_id: dict[str, list[SensorEvaluationRow]] = {}
    for row in [*derived, *parts]:
        by_id.setdefault(row.evaluation_id, []).append(row)
    out = []
    for eid in sorted(by_id):
        rows = by_id[eid]
        if len(rows) == 1:
            out.append(rows[0])
            continue
        main = next((r for r in rows if r.reported_at is not None), rows[0])
        asked = next((r for r in rows if r.requested_at is not None), main)
        out.append(
            replace(
                main,
                requested_at=asked.requested_at,
                not_before_at=asked.not_before_at,
                row_version=max(r.row_version for r in rows),
            )
        )
    return out


def _event_ids(log: SensorLog) -> set[str]:
    ids: set[str] = set()
    for seen in (log.statuses, log.messages, log.requested, log.results, log.resolved):
        ids.update(s.event_id for s in seen.values())
    return ids


def _row_version(log: SensorLog) -> str:
    # The checkpoint counts by its boundary: which later copies of a key a cut let go depends on when
    # they landed, the boundary only on the clock.
    own = [log.definition_event_id or "", log.removed_event_id, log.base.boundary]
    return max([*own, *_event_ids(log)])


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


def table_rows(tables: SensorTables, *, finished: bool = True) -> Mapping[str, list[Any]]:
    """Every table's rows, sorted by key; ``finished=False``: ``sensor_evaluations`` and
    ``sensor_inbox`` without the rows only the finished rows show (as stored: those are read from the
    ``sensor_archived_*`` tables, so a publish does not rewrite 30 days of them)."""
    sensors, evaluations, inbox = [], [], []
    parts: dict[str, list[SensorEvaluationRow]] = {}
    for row in tables.archived.values():
        parts.setdefault(row.sensor_id, []).append(row)
    for log in tables.logs():
        view = sensor_view(log, tables.run_items_of(log.sensor_id))
        sensors.append(sensor_row(log, view))
        shown = evaluation_rows(log, view)
        own = parts.get(log.sensor_id, [])
        if not finished:
            ids = {r.evaluation_id for r in shown}
            own = [p for p in own if p.evaluation_id in ids]
        evaluations.extend(_merged(shown, own))
        inbox.extend(inbox_rows(log.sensor_id, view))
    if finished:
        derived = {(r.sensor_id, r.item_id) for r in inbox}
        inbox += [r for k, r in tables.archived_inbox.items() if k not in derived]
    return {
        "sensor_events": [
            SensorEventRow(
                eid, _sensor_of(tables.events[eid]) or "", encode_event(tables.events[eid]).decode("utf-8")
            )
            for eid in sorted(tables.events)
        ],
        "sensor_run_items": [tables.run_items[k] for k in sorted(tables.run_items)],
        "sensor_checkpoints": [
            SensorCheckpointRow(k, base.boundary, checkpoint_json(base))
            for k, base in sorted(tables.checkpoints().items())
        ],
        "sensors": sensors,
        "sensor_evaluations": sorted(evaluations, key=lambda r: r.evaluation_id),
        "sensor_inbox": sorted(inbox, key=lambda r: (r.sensor_id, r.item_id)),
        "sensor_archived_evaluations": [tables.archived[k] for k in sorted(tables.archived)],
        "sensor_archived_inbox": [tables.archived_inbox[k] for k in sorted(tables.archived_inbox)],
    }
