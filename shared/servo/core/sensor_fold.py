"""The sensor fold (automation §5, §6.2): sensor events -> one sensor's state, its evaluations, inbox
items and pending run requests, and the sweep's decision whether an evaluation is due.

The fold only accumulates (per id, the event with the smallest event id), so any permutation,
duplication or batching of one set of events gives the same log. The compare-and-set is then a pure
function of that set: the state versions form a chain, and the step v -> v+1 is taken by the first event
(smallest event id) that claims it: an enable/disable carrying ``state_version = v + 1``, or a TRIGGERED
or SKIPPED result computed from v while the sensor was enabled (or a MANUAL one). Every other result
from v is SKIPPED_STALE: it changes nothing, its run requests are dropped (counted) and its items stay
pending, so no item is lost (P2, P3, P10, P13). A status change that loses its step to an evaluation
did not happen; its writer re-reads and claims the next step (the API's compare-and-set loop).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from servo.core._automation_events import RunRequestResolved
from servo.core._sensor_events import (
    SensorDefinitionRemoved,
    SensorDefinitionUpserted,
    SensorEvaluated,
    SensorEvaluationRequested,
    SensorMessageReceived,
    SensorStatusChanged,
)
from servo.core.canonical_json import canonical_bytes
from servo.core.sensors import SensorSpec, evaluation_id, manual_evaluation_id, parse_evaluation_id

__all__ = [
    "EvaluationPlan",
    "SensorCheckpoint",
    "SensorLog",
    "SensorState",
    "SensorView",
    "fold_sensors",
    "manual_evaluation",
    "next_evaluation",
    "sensor_view",
]

MAX_ITEMS_PER_EVALUATION = 100
ITEM_FAILURE_LIMIT = 3
EXPIRY_GRACE_MS = 60_000
PAUSED_WARNING = "sensor is paused"


class FoldEvent(Protocol):
    """What the fold reads of a ledger event (``servo.core.events.Event`` has it)."""

    @property
    def event_id(self) -> str: ...
    @property
    def timestamp_ms(self) -> int: ...
    @property
    def data(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class Seen:
    """The first (smallest event id) event of one id; later duplicates lose to it."""

    event_id: str
    at: int
    data: Any


@dataclass(frozen=True, slots=True)
class SensorCheckpoint:
    """The settled start of one sensor's chain, folded in place of its events before ``boundary``
    (§5 retention, ``servo.core.sensor_retention``). The fold ignores a sensor event older than
    ``boundary``: it is either folded in here already or arrived after its history was let go.

    Every field merges by max (or is a function of the chain walked so far), so checkpointing at two
    boundaries one after the other gives what checkpointing at the later one gives.
    """

    boundary: str = ""
    state_version: int = 0
    enabled: bool | None = None  # None: nothing settled yet, the first definition's defaultEnabled
    cursor: str | None = None
    last_disable: str = ""  # the newest applied disable folded in (it skips items pending before it)
    last_evaluation: tuple[int, str, str] | None = None  # reported_at, evaluation id, status
    last_error_at: int | None = None
    attempts: Mapping[int, int] = field(default_factory=dict)  # version >= state_version -> newest attempt
    failures: Mapping[str, int] = field(default_factory=dict)  # kept item -> errors folded in
    done: frozenset[str] = frozenset()  # kept items an applied evaluation folded in took


@dataclass(frozen=True, slots=True)
class SensorLog:
    """Everything folded for one sensor, kept as sets so the fold ignores order and repetition."""

    sensor_id: str
    definition: str | None = None  # canonical JSON of the newest definition
    definition_version: int = 0
    definition_event_id: str | None = None
    first_event_id: str | None = None
    first_seen_at: int | None = None
    default_enabled: bool = False  # of the first definition: defaultEnabled applies on first sight only
    last_upsert_event_id: str = ""
    removed_event_id: str = ""
    statuses: dict[tuple[int, bool], Seen] = field(default_factory=dict)
    messages: dict[str, Seen] = field(default_factory=dict)
    requested: dict[str, Seen] = field(default_factory=dict)
    results: dict[str, Seen] = field(default_factory=dict)
    resolved: dict[str, Seen] = field(default_factory=dict)  # request id -> its RunRequestResolved
    base: SensorCheckpoint = SensorCheckpoint()

    def copy(self) -> SensorLog:
        return replace(
            self,
            statuses=dict(self.statuses),
            messages=dict(self.messages),
            requested=dict(self.requested),
            results=dict(self.results),
            resolved=dict(self.resolved),
        )

    @property
    def removed(self) -> bool:
        return self.removed_event_id > self.last_upsert_event_id

    def definition_json(self) -> dict[str, Any] | None:
        return None if self.definition is None else json.loads(self.definition)


@dataclass(slots=True)
class SensorState:
    sensors: dict[str, SensorLog] = field(default_factory=dict)


def _first(seen: dict[Any, Seen], key: Any, event: FoldEvent) -> None:
    old = seen.get(key)
    if old is None or event.event_id < old.event_id:
        seen[key] = Seen(event.event_id, event.timestamp_ms, event.data)


def _upsert(log: SensorLog, event: FoldEvent, data: SensorDefinitionUpserted) -> SensorLog:
    if log.definition_event_id is None or (data.definition_version, event.event_id) > (
        log.definition_version,
        log.definition_event_id,
    ):
        log = replace(
            log,
            definition=canonical_bytes(data.definition).decode("utf-8"),
            definition_version=data.definition_version,
            definition_event_id=event.event_id,
        )
    if log.first_event_id is None or event.event_id < log.first_event_id:
        log = replace(
            log,
            first_event_id=event.event_id,
            first_seen_at=event.timestamp_ms,
            default_enabled=data.definition.get("defaultEnabled") is True,
        )
    return replace(log, last_upsert_event_id=max(log.last_upsert_event_id, event.event_id))


def resolved_sensor_of(data: Any) -> str | None:
    """The sensor whose applied evaluation a RunRequestResolved settles (``eval:{sensor}:...``), or None."""
    if isinstance(data, RunRequestResolved) and data.request_id.startswith("eval:"):
        return data.request_id.split(":", 2)[1]
    return None


def fold_sensors(state: SensorState, events: Iterable[FoldEvent], *, settled: bool = False) -> SensorState:
    """Fold sensor events (and the outcomes of sensor run requests; others are ignored) into a new
    state; ``state`` is not modified. An event older than its sensor's checkpoint is turned away unless
    ``settled`` (the cut folds a later copy of a key that went, which counts on its own)."""
    result = SensorState(dict(state.sensors))
    copied: set[str] = set()
    for event in events:
        data = event.data
        sensor_id = resolved_sensor_of(data)
        if sensor_id is None:
            if not isinstance(
                data,
                SensorDefinitionUpserted
                | SensorDefinitionRemoved
                | SensorStatusChanged
                | SensorMessageReceived
                | SensorEvaluationRequested
                | SensorEvaluated,
            ):
                continue
            sensor_id = data.sensor_id
        log = result.sensors.get(sensor_id) or SensorLog(sensor_id)
        definition = isinstance(data, SensorDefinitionUpserted | SensorDefinitionRemoved)
        if not definition and not settled and event.event_id < log.base.boundary:
            continue  # folded into the checkpoint already, or history let go (definitions are kept)
        if sensor_id not in copied:  # the caller's state keeps its own dicts
            log = log.copy()
            copied.add(sensor_id)
        if isinstance(data, RunRequestResolved):
            _first(log.resolved, data.request_id, event)
        elif isinstance(data, SensorDefinitionUpserted):
            log = _upsert(log, event, data)
        elif isinstance(data, SensorDefinitionRemoved):
            log = replace(log, removed_event_id=max(log.removed_event_id, event.event_id))
        elif isinstance(data, SensorStatusChanged):
            _first(log.statuses, (data.state_version, data.enabled), event)
        elif isinstance(data, SensorMessageReceived):
            _first(log.messages, data.message_id, event)
        elif isinstance(data, SensorEvaluationRequested):
            _first(log.requested, data.evaluation_id, event)
        else:
            _first(log.results, data.evaluation_id, event)
        result.sensors[sensor_id] = log
    return result


# ---------------------------------------------------------------------------------------------- view


@dataclass(frozen=True, slots=True)
class EvaluationView:
    evaluation_id: str
    trigger: str
    expected_state_version: int
    status: str  # PENDING/TRIGGERED/SKIPPED/ERROR/SKIPPED_STALE/EXPIRED
    requested_at: int | None
    reported_at: int | None
    not_before: int | None
    item_ids: tuple[str, ...]
    dropped_run_requests: int = 0


@dataclass(frozen=True, slots=True)
class ItemView:
    item_id: str
    status: str  # PENDING/DONE/SKIPPED/FAILED
    error_count: int
    received_event_id: str


@dataclass(frozen=True, slots=True)
class SensorView:
    """One sensor's derived state (the ``sensors`` row with its evaluations, inbox and requests)."""

    sensor_id: str
    enabled: bool
    removed: bool
    state_version: int
    cursor: str | None
    last_evaluation_at: int | None
    last_evaluation_status: str | None
    last_error_at: int | None
    evaluations: dict[str, EvaluationView]
    items: dict[str, ItemView]
    run_requests: dict[str, dict[str, Any]]  # request_id -> the PENDING request of an applied evaluation
    settled_attempt: int = 0  # the newest attempt at this version folded into the checkpoint

    def pending_items(self) -> list[str]:
        """Pending item ids, oldest first (by the event that recorded them)."""
        pending = [i for i in self.items.values() if i.status == "PENDING"]
        return [i.item_id for i in sorted(pending, key=lambda i: i.received_event_id)]


def _claims_by_step(log: SensorLog) -> dict[int, list[tuple[str, str, Any]]]:
    """Per version v, the events that claim the step v -> v+1 (indexed once: the chain walk stays linear)."""
    steps: dict[int, list[tuple[str, str, Any]]] = {}
    for (target, _), seen in log.statuses.items():
        steps.setdefault(target - 1, []).append((seen.event_id, "status", seen.data))
    for seen in log.results.values():
        if seen.data.status != "ERROR":
            steps.setdefault(seen.data.expected_state_version, []).append((seen.event_id, "eval", seen.data))
    return steps


@dataclass(slots=True)
class Chain:
    """The compare-and-set chain walked from the checkpoint: where it stands and what took its steps."""

    version: int
    enabled: bool
    cursor: str | None
    applied: list[str] = field(default_factory=list)  # evaluation ids, in step order
    disables: list[str] = field(default_factory=list)  # event ids of applied disables


def walk_chain(log: SensorLog, until: str | None = None) -> Chain:
    """Take each step's first claim (module docstring), starting from the checkpoint.

    With ``until`` (an event id), stop at the first step that is not settled before it: its winner is
    not older, or it is an evaluation with a run request not resolved before it (its run may be owed).
    """
    base = log.base
    enabled = log.default_enabled if base.enabled is None else base.enabled
    chain = Chain(base.state_version, enabled, base.cursor)
    steps = _claims_by_step(log)
    while claims := [
        claim
        for claim in steps.get(chain.version, ())
        if claim[1] == "status" or chain.enabled or claim[2].trigger == "MANUAL"
    ]:
        winner_id, kind, data = min(claims, key=lambda claim: claim[0])
        if until is not None and (winner_id >= until or (kind == "eval" and not _resolved(log, data, until))):
            break
        if kind == "status":
            chain.enabled = data.enabled
            if not chain.enabled:
                chain.disables.append(winner_id)
        else:
            chain.applied.append(data.evaluation_id)
            if data.cursor_updated:
                chain.cursor = data.cursor
        chain.version += 1
    return chain


def _resolved(log: SensorLog, result: SensorEvaluated, until: str) -> bool:
    for request in result.run_requests:
        seen = log.resolved.get(str(request["request_id"]))
        if seen is None or seen.event_id >= until:
            return False
    return True


def sensor_view(log: SensorLog, run_items: Mapping[str, str] | None = None) -> SensorView:
    """Derive the sensor's state from its checkpoint and folded events (the compare-and-set chain,
    module docstring).

    ``run_items`` maps the ``run:{run_id}`` items of a run-status sensor to the event id of the event
    that made the run terminal (their arrival order); the run fold knows them, no sensor event does.
    """
    base = log.base
    chain = walk_chain(log)
    applied = set(chain.applied)
    disables = [base.last_disable, *chain.disables] if base.last_disable else chain.disables
    evaluations = _evaluations(log, applied)
    counted = [
        (e.reported_at or 0, e.evaluation_id, e.status)
        for e in evaluations.values()
        if e.status in ("TRIGGERED", "SKIPPED", "ERROR") and e.reported_at is not None
    ]
    last = max([*counted, *([base.last_evaluation] if base.last_evaluation else [])], default=None)
    errors = [e.reported_at or 0 for e in evaluations.values() if e.status == "ERROR"]
    if base.last_error_at is not None:
        errors.append(base.last_error_at)
    requests: dict[str, dict[str, Any]] = {}
    for evaluation_id_ in applied:
        for request in log.results[evaluation_id_].data.run_requests:
            requests[str(request["request_id"])] = {**request, "status": "PENDING"}
    return SensorView(
        sensor_id=log.sensor_id,
        enabled=chain.enabled,
        removed=log.removed,
        state_version=chain.version,
        cursor=chain.cursor,
        last_evaluation_at=None if last is None else last[0],
        last_evaluation_status=None if last is None else last[2],
        last_error_at=max(errors, default=None),
        evaluations=evaluations,
        items=_items(log, applied, disables, run_items or {}),
        run_requests=requests,
        settled_attempt=base.attempts.get(chain.version, 0),
    )


def _evaluations(log: SensorLog, applied: set[str]) -> dict[str, EvaluationView]:
    newest_attempt: dict[int, int] = dict(log.base.attempts)
    for evaluation_id_ in log.requested:
        ref = parse_evaluation_id(evaluation_id_)
        if ref.state_version is not None and ref.attempt is not None:
            newest_attempt[ref.state_version] = max(newest_attempt.get(ref.state_version, 0), ref.attempt)
    views: dict[str, EvaluationView] = {}
    for evaluation_id_ in sorted(set(log.requested) | set(log.results)):
        asked, answer = log.requested.get(evaluation_id_), log.results.get(evaluation_id_)
        source = answer.data if answer is not None else asked.data if asked is not None else None
        assert source is not None
        dropped = 0
        if answer is None:
            ref = parse_evaluation_id(evaluation_id_)
            superseded = ref.attempt is not None and ref.attempt < newest_attempt.get(
                ref.state_version or 0, 0
            )
            status = "EXPIRED" if superseded else "PENDING"
        elif answer.data.status == "ERROR" or evaluation_id_ in applied:
            status = answer.data.status
        else:
            status, dropped = "SKIPPED_STALE", len(answer.data.run_requests)
        views[evaluation_id_] = EvaluationView(
            evaluation_id=evaluation_id_,
            trigger=source.trigger,
            expected_state_version=source.expected_state_version,
            status=status,
            requested_at=None if asked is None else asked.at,
            reported_at=None if answer is None else answer.at,
            not_before=None if asked is None else asked.data.not_before,
            item_ids=tuple(source.item_ids),
            dropped_run_requests=dropped,
        )
    return views


def _items(
    log: SensorLog, applied: set[str], disables: list[str], run_items: Mapping[str, str]
) -> dict[str, ItemView]:
    done: set[str] = set(log.base.done)
    failures: dict[str, int] = dict(log.base.failures)
    for evaluation_id_, seen in log.results.items():
        if evaluation_id_ in applied:
            done.update(seen.data.item_ids)
        elif seen.data.status == "ERROR":
            for item_id in set(seen.data.item_ids):
                failures[item_id] = failures.get(item_id, 0) + 1
    arrived = [(m.data.item_id, m.event_id, m.data.status) for m in log.messages.values()]
    arrived += [(item_id, event_id, "RECORDED") for item_id, event_id in run_items.items()]
    items: dict[str, ItemView] = {}
    for item_id, event_id, recorded in arrived:
        errors = failures.get(item_id, 0)
        if item_id in done:
            status = "DONE"
        elif recorded == "FAILED" or errors >= ITEM_FAILURE_LIMIT:
            status = "FAILED"
        elif recorded == "SKIPPED" or any(d > event_id for d in disables):
            status = "SKIPPED"
        else:
            status = "PENDING"
        items[item_id] = ItemView(item_id, status, errors, event_id)
    return items


# ---------------------------------------------------------------------------------------------- scheduling


@dataclass(frozen=True, slots=True)
class EvaluationPlan:
    """A SensorEvaluationRequested the sweep (or the compactor after commit) should append, with its task."""

    evaluation_id: str
    expected_state_version: int
    not_before: int
    trigger: str
    item_ids: tuple[str, ...] = ()
    warning: str | None = None


def next_evaluation(
    view: SensorView, spec: SensorSpec, *, now_ms: int, first_seen_at_ms: int, lookahead_ms: int = 0
) -> EvaluationPlan | None:
    """The scheduled evaluation due by ``now_ms + lookahead_ms``, or None (§6.2).

    None while disabled or removed, or while one scheduled evaluation of the current version is in
    flight; an evaluation without a result by ``not_before + timeout + 60 s`` is replaced by attempt + 1
    at the same version (its result may still arrive and compete). POLL: due at the last evaluation (an
    error too: the interval is the backoff) + the interval; PUSH and RUN_STATUS: when items are pending
    (oldest 100) and the backoff after an error is over.
    """
    if not view.enabled or view.removed:
        return None
    version = view.state_version
    # Every scheduled id of this version counts, requested or only reported: an id is never reused.
    current = [
        e for e in view.evaluations.values() if e.trigger != "MANUAL" and e.expected_state_version == version
    ]
    attempt = 1 + max(
        [view.settled_attempt, *(parse_evaluation_id(e.evaluation_id).attempt or 0 for e in current)]
    )
    in_flight = [e for e in current if e.status == "PENDING"]
    if in_flight:
        newest = max(in_flight, key=lambda e: parse_evaluation_id(e.evaluation_id).attempt or 0)
        if now_ms <= (newest.not_before or 0) + spec.timeout_seconds * 1000 + EXPIRY_GRACE_MS:
            return None
        return EvaluationPlan(
            evaluation_id(spec.sensor_id, version, attempt), version, now_ms, newest.trigger, newest.item_ids
        )
    interval_ms = spec.minimum_interval_seconds * 1000
    if spec.kind == "POLL":
        base = view.last_evaluation_at
        not_before = first_seen_at_ms if base is None else base + interval_ms
        items: tuple[str, ...] = ()
    else:
        items = tuple(view.pending_items()[:MAX_ITEMS_PER_EVALUATION])
        if not items:
            return None
        not_before = now_ms if view.last_error_at is None else max(now_ms, view.last_error_at + interval_ms)
    if not_before > now_ms + lookahead_ms:
        return None
    return EvaluationPlan(
        evaluation_id(spec.sensor_id, version, attempt), version, not_before, spec.kind, items
    )


def manual_evaluation(view: SensorView, idempotency_key: str, *, now_ms: int) -> EvaluationPlan:
    """A manual evaluate (POST .../evaluate): always allowed, from the current version, warning if paused."""
    return EvaluationPlan(
        manual_evaluation_id(view.sensor_id, idempotency_key),
        view.state_version,
        now_ms,
        "MANUAL",
        warning=None if view.enabled else PAUSED_WARNING,
    )
