"""Compaction followed by its side effects: the loop that moves runs forward.

``compact_and_act`` is what the compactor function runs for a finalize event and what the embedded
stack runs after every ledger write: fold what is new, publish, then — only after the publish
committed (design §5.6) — let the controller decide dispatches and timers for the runs that changed,
and start the runs of the sensor results it read (automation §6.3).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from servo.core import controller as ctl
from servo.core.events import (
    SensorDefinitionUpserted,
    SensorEvaluated,
    SensorStatusChanged,
    ledger_object_name,
)
from servo.core.states import is_terminal_public
from servo.jsonlog import log_fields
from servo.services._flights import Flights
from servo.services.context import ServiceContext

if TYPE_CHECKING:
    from servo.services.compaction import CompactionResult
    from servo.services.read_model import Snapshot

logger = logging.getLogger("servo.orchestrate")
# The instance's compaction flights live in its warm cache, beside the decoded state they share.
_FLIGHTS = "compaction-flights"


@dataclass(frozen=True, slots=True)
class Changes:
    """What a compaction leaves to its act phase: the runs it changed, and the ledger objects of the
    sensor events it read with their sensors (after the commit, applied results' run requests are
    submitted and those sensors' next evaluations requested)."""

    runs: frozenset[str] = frozenset()
    sensor_events: frozenset[str] = frozenset()
    sensors: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.runs or self.sensor_events)

    def __or__(self, other: Changes) -> Changes:
        return Changes(
            self.runs | other.runs, self.sensor_events | other.sensor_events, self.sensors | other.sensors
        )


def _due_again(data: object) -> str | None:
    """The sensor an event may make due again (§6.2): a result, an enable, a definition (a new sensor
    enabled by default, or another interval). A disable or a message makes none: a paused sensor is
    not evaluated, and a push asks for its own evaluation."""
    if isinstance(data, SensorStatusChanged):
        return data.sensor_id if data.enabled else None
    if isinstance(data, SensorEvaluated | SensorDefinitionUpserted):
        return data.sensor_id
    return None


def changes_of(result: CompactionResult | None) -> Changes:
    if result is None:
        return Changes()
    due = [(e.event_id, sensor) for e in result.runless if (sensor := _due_again(e.data)) is not None]
    return Changes(
        frozenset(result.changed_run_ids),
        frozenset(ledger_object_name(event_id) for event_id, _ in due),
        frozenset(sensor for _, sensor in due),
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    published: bool
    events_applied: int
    malformed: int
    changed_runs: int
    effects: int


def compact_workspace(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    hint: Sequence[str] = (),
    lookback_ms: int | None = None,
    *,
    list_ledger: bool = True,
) -> tuple[bool, int, int, list[str]]:
    """Fold and publish; ``list_ledger=False`` when ``hint`` holds every object written since the
    last publish (the embedded group commit), so no list is paid."""
    return _summary(_compacted(ctx, tenant_id, workspace_id, hint, lookback_ms, list_ledger=list_ledger))


def compact_changes(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    names: Sequence[str],
    *,
    sole_publisher: bool = False,
) -> Changes:
    """Fold and publish as ``compact_workspace``; what the act phase is to do after it.

    ``sole_publisher``: the caller (the embedded group commit) publishes every head of the workspace
    and hands over every object written since the last publish, so no list is paid and the head it
    saw last is not read again (``CompactionPolicy.list_ledger`` and ``sole_publisher``).
    """
    result = _compacted(
        ctx,
        tenant_id,
        workspace_id,
        names,
        None,
        list_ledger=not sole_publisher,
        sole_publisher=sole_publisher,
    )
    return changes_of(result)


def _summary(result: CompactionResult | None) -> tuple[bool, int, int, list[str]]:
    """(published, events applied, malformed objects, changed runs); nothing for a ridden flight."""
    if result is None:
        return False, 0, 0, []
    return result.published, result.events_applied, len(result.malformed), sorted(result.changed_run_ids)


def _compacted(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    hint: Sequence[str],
    lookback_ms: int | None,
    *,
    list_ledger: bool = True,
    sole_publisher: bool = False,
) -> CompactionResult | None:
    """The compaction this call ran, or None when it rode another one's flight."""
    # One cache with the read model: every file below the head pointer is immutable, so what the
    # compactor just decoded (or wrote) serves the next read as is.
    from servo.services._compaction_ledger import DEFAULT_LOOKBACK_MS, all_applied
    from servo.services.compaction import CompactionPolicy, compact

    policy = CompactionPolicy(
        min_publish_interval_ms=ctx.settings.min_publish_interval_ms,
        lookback_ms=DEFAULT_LOOKBACK_MS if lookback_ms is None else lookback_ms,
        list_ledger=list_ledger,
        sole_publisher=sole_publisher,
        ended_per_index_write=ctx.settings.ended_runs_per_index_write,
    )

    cache = ctx.workspace_cache(tenant_id, workspace_id)

    def work(more_hint: Callable[[], list[str]] | None = None) -> CompactionResult:
        return compact(
            ctx.workspace_store(tenant_id, workspace_id),
            tenant_id=tenant_id,
            workspace_id=workspace_id,
            now_ms=ctx.clock_ms(),
            hint=hint,
            more_hint=more_hint,
            cache=cache,
            policy=policy,
        )

    if not hint:
        result = work()  # a sweep folds whatever is new: it cannot ride another compaction
    else:

        def covered(led: CompactionResult | None) -> bool:
            # The leader's snapshot is the head as of its publish (or its last read): what it shows
            # applied stays applied. What it does not show, compact itself checks against a fresh
            # head before anything else, when this rider leads a flight of its own.
            return led is not None and all_applied(hint, led.snapshot.cache.applied.view())

        ridden = ctx.instance_state(_FLIGHTS, Flights).run((tenant_id, workspace_id), work, covered, hint)
        if ridden is None:
            return None
        result = ridden
    for name, reason in result.malformed:
        logger.error(f"skipped malformed ledger object {name}: {reason}", extra=log_fields(object=name))
    return result


def act_on(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    run_ids: Iterable[str],
    snapshot: Snapshot | None = None,
) -> int:
    """Controller decisions for runs that just changed, carried out; returns events appended.

    ``snapshot`` is the state to act on when the caller has it (the one its compaction published);
    otherwise the head is read once and every run's partition comes from that one published state.
    """
    from servo.services.effects import carry_out

    appended = 0
    now = ctx.clock_ms()
    if snapshot is None:
        snapshot = ctx.snapshot(tenant_id, workspace_id)
    backfill_run_ended = False
    for run_id in run_ids:
        part = snapshot.partition(run_id)
        if part is None:
            continue
        decisions = ctl.after_publish(part, now)
        if decisions:
            appended += carry_out(ctx, tenant_id, workspace_id, part, decisions)
        if part.run is not None and part.run.trigger_type == "backfill":
            backfill_run_ended |= is_terminal_public(snapshot.public_state(part.run))
    if backfill_run_ended:
        _plan_backfills(ctx, tenant_id, workspace_id)
    return appended


def act(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    changes: Changes,
    snapshot: Snapshot | None = None,
) -> int:
    """The act phase after a commit: the controller's decisions for the changed runs (``act_on``), then
    for the sensor events read, their runs and next evaluations; returns the controller's events appended."""
    appended = act_on(ctx, tenant_id, workspace_id, sorted(changes.runs), snapshot) if changes.runs else 0
    if changes.sensor_events:
        _act_on_sensors(ctx, tenant_id, workspace_id, changes)
    return appended


def _act_on_sensors(ctx: ServiceContext, tenant_id: str, workspace_id: str, changes: Changes) -> None:
    """Sensor events were recorded: results' runs start, and the next evaluations are requested, now
    rather than at the next sweep (which repairs whatever this pass does not get to, a crash in between
    included)."""
    from servo.services.sensor_sweep import act_after_commit

    try:
        act_after_commit(ctx, tenant_id, workspace_id, sorted(changes.sensor_events), changes.sensors)
    except Exception:
        logger.exception("acting on sensor events failed; the sweep submits and requests what is due")


def _plan_backfills(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> None:
    """A backfill run ended: its chunk may be done, and the next one may start now rather than at the
    next sweep (which repairs whatever this pass does not get to)."""
    from servo.services._compaction_ledger import DEFAULT_LOOKBACK_MS
    from servo.services.backfill_planner import REPAIR_AFTER_MS, plan_backfills

    try:
        plan_backfills(
            ctx, tenant_id, workspace_id, lookback_ms=DEFAULT_LOOKBACK_MS, repair_after_ms=REPAIR_AFTER_MS
        )
    except Exception:
        logger.exception("backfill planning failed; the sweep plans again")


def compact_and_act(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    hint: Sequence[str] = (),
    lookback_ms: int | None = None,
) -> Outcome:
    result = _compacted(ctx, tenant_id, workspace_id, hint, lookback_ms)
    published, applied, malformed, changed = _summary(result)
    changes = changes_of(result)
    # Acting on the state just published, not a fresh read of the head: a newer head (another
    # instance's publish) gets its own controller pass from the compaction that published it.
    effects = act(ctx, tenant_id, workspace_id, changes, result.snapshot) if result and changes else 0
    logger.info(
        "compaction",
        extra=log_fields(
            events_applied=applied,
            changed_runs=len(changed),
            effects=effects,
            published=published,
            # The deployment's compaction-lag metric and alert read this field (infra monitoring.tf).
            compaction_lag_ms=result.lag_ms if result is not None and published else None,
        ),
    )
    return Outcome(published, applied, malformed, len(changed), effects)
