"""The pure fold: (state, events) -> state (behavior §2 with design §6 overrides).

Events are grouped by run and applied to that run's partition in event_id (ULID) order. When a batch
holds an event older than what the partition already folded (a writer with a skewed clock), the run
is re-folded from scratch over every event it has seen, so the result always equals one clean fold in
ULID order: any permutation, duplication or split into batches gives the same state (design §5.2).

Terminal task states are final (design §6), and a late success never turns a CANCELLED task into
SUCCEEDED. A success minted before the sweep's forced cancel of the same attempt, but written after
it, comes first in ULID order; so a success followed by a cancel of its attempt does not apply, and
the cancel does. The outcome depends on the set of events only: a cancel that arrives after such a
success was folded re-folds the run, and both orders end CANCELLED.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import replace

from servo.core.errors import InvalidEvent
from servo.core.events import EncodedEvent, Event, TaskFinished, UnknownEvent, as_event
from servo.core.fold_context import FoldContext
from servo.core.fold_handlers import apply
from servo.core.liveness import Attempt, beat_attempt, kept_beats, newest_beats
from servo.core.rows import IdempotencyRow, row_maker
from servo.core.state import FoldState, RunPartition
from servo.core.states import TaskState

__all__ = ["fold", "fold_ahead", "fold_further_ahead", "fold_run"]

_idempotency_row = row_maker(IdempotencyRow)  # one a fact applied


def fold(state: FoldState, events: Iterable[Event | EncodedEvent]) -> FoldState:
    """Fold a batch of events into a new state; ``state`` is not modified.

    Args:
        state: the state of one tenant/workspace.
        events: in any order, possibly repeated; an ``EncodedEvent`` (its writer's bytes and the
            event) stays those bytes in the result, so storing it encodes nothing again.

    Returns:
        A new FoldState sharing the partitions the batch did not touch.

    Raises:
        InvalidEvent: an event of another tenant/workspace, or two different events with one id.
    """
    by_run: dict[str, list[Event | EncodedEvent]] = {}
    for value in events:
        event = as_event(value)
        if (event.tenant_id, event.workspace_id) != (state.tenant_id, state.workspace_id):
            raise InvalidEvent(
                f"event {event.event_id} belongs to {event.tenant_id}/{event.workspace_id}, "
                f"not {state.tenant_id}/{state.workspace_id}",
                details={"field": "tenant_id"},
            )
        run_id = event.run_id
        if run_id is None:
            continue  # run-less events (cron timers) belong to the M2 automation state, not to a run
        by_run.setdefault(run_id, []).append(value)
    result = state.copy()
    for run_id, run_events in by_run.items():
        result.runs[run_id] = fold_run(state.runs.get(run_id), run_id, run_events)
    return result


def fold_run(
    partition: RunPartition | None, run_id: str, events: Iterable[Event | EncodedEvent]
) -> RunPartition:
    """Fold events of one run into (a copy of) its partition; ``partition`` is not modified. An
    ``EncodedEvent`` given stays its bytes in the result (see ``fold``)."""
    base = partition if partition is not None else RunPartition(run_id)
    new: dict[str, Event] = {}
    given: dict[str, EncodedEvent] = {}
    for value in events:
        event = as_event(value)
        if event.run_id != run_id:
            raise InvalidEvent(
                f"event {event.event_id} belongs to run {event.run_id}, not {run_id}",
                details={"field": "run_id"},
            )
        if event.event_id in base.events:
            continue
        seen = new.setdefault(event.event_id, event)
        if seen != event:
            raise InvalidEvent(
                f"two different events share id {event.event_id}", details={"field": "event_id"}
            )
        if isinstance(value, EncodedEvent):
            given[event.event_id] = value
    result = _fold_new(base, run_id, new)
    if given and result is not base:
        _keep_bodies(given, result)
    return result


def _fold_new(base: RunPartition, run_id: str, new: dict[str, Event]) -> RunPartition:
    """``base`` with ``new`` (events it does not hold, by id) folded in; ``base`` when none applies."""
    kept = kept_beats(base)
    new = newest_beats(new.values(), kept)
    if not new:
        return base  # only heartbeats older than the ones kept: superseded already
    ordered = sorted(new)
    if _extends(base, base.max_event_id, new):
        result = base.copy()
        superseding: dict[str, Attempt] = {}
        for event in new.values():
            attempt = beat_attempt(event)
            if attempt is not None and attempt in kept:
                result.events.pop(kept[attempt], None)  # the newer heartbeat says all it did
                superseding[event.event_id] = attempt
        rejected, checkpoints = _apply_keeping_checkpoints(
            result, [new[i] for i in ordered], (), replace(base)
        )
        if not rejected & superseding.keys():
            result.checkpoint = checkpoints
            return result
        # A heartbeat that came after its attempt ended replaced one that applied: only a re-fold
        # gives what a clean fold without the older one gives.
    elif (resumed := _fold_on_checkpoint(base, new)) is not None:
        return resumed
    # A late event: re-fold this one run from its full history, in ULID order.
    result = RunPartition(run_id)
    merged = newest_beats(map(as_event, {**base.events, **new}.values()), {})
    _apply_all(result, [merged[i] for i in sorted(merged)])
    _keep_bodies(base.events, result)
    return result


def _keep_bodies(values: Mapping[str, Event | EncodedEvent], result: RunPartition) -> None:
    # Events read from storage stay the bodies they were read as (and those given with their bytes
    # stay those bytes): a base rewrite of a big run then copies them instead of encoding every
    # event again after each late one.
    for event_id, value in values.items():
        if isinstance(value, EncodedEvent) and event_id in result.events:
            result.events[event_id] = value


def _fold_on_checkpoint(base: RunPartition, new: dict[str, Event]) -> RunPartition | None:
    """``base`` with ``new`` folded in, when some of them are older than its newest event, computed
    from the newest of ``base``'s checkpoints older than all of them instead of the whole history;
    None when that cannot be done.

    Under load, writers' events reach the ledger a little out of id order: a 1,000-task fan-out
    re-folded its whole run for a third of its batches, each time for an event only a few behind.
    A checkpoint is a clean fold of every event up to its newest id (as each fold_run result is),
    so folding every later event on it in ULID order is the clean fold of them all, as long as no
    event at or below that id arrived since, and none of the replayed ones is a heartbeat (their
    supersession is left to the full re-fold) or cancels a success the checkpoint applied.
    """
    oldest = min(new)
    checkpoint = base.checkpoint
    while checkpoint is not None and checkpoint.max_event_id >= oldest:
        checkpoint = checkpoint.checkpoint  # taken after an event of this batch was minted
    if checkpoint is None:
        return None
    mark = checkpoint.max_event_id
    later = {i: e for i, e in base.events.items() if i > mark}
    if len(base.events) - len(later) != len(checkpoint.events) or any(
        i not in base.events for i in checkpoint.events
    ):
        return None  # the checkpoint misses an event that came after it (or base dropped one)
    if any(i > mark for i in kept_beats(base).values()):
        return None
    replay = {**{i: as_event(e) for i, e in later.items()}, **new}
    if any(beat_attempt(e) is not None for e in new.values()) or _cancels_a_success(
        checkpoint, replay.values()
    ):
        return None
    kept_beats(checkpoint)  # worked out before the copy, so the result's stay complete
    result = checkpoint.copy()
    ordered = sorted(replay)
    # Before the batch's oldest event the replay is a clean fold of its own, a checkpoint sure to
    # serve the next batch as well as this one served.
    cut = bisect_left(ordered, oldest)
    _, result.checkpoint = _apply_keeping_checkpoints(
        result, [replay[i] for i in ordered], (cut,), checkpoint
    )
    _keep_bodies(base.events, result)
    return result


# Where a fold keeps checkpoints besides its start: this many events before the newest it applied.
# A batch's late events were minted a few places before the newest one folded (they were being
# written when the batch was taken), so the next batch mostly folds on one of these and replays only
# those few events, not the whole batch before it.
_CHECKPOINT_DEPTHS = (16, 64)
# Checkpoints kept per run, newest first: each is a copy of the run's rows and events.
_MAX_CHECKPOINTS = 4


def _apply_keeping_checkpoints(
    result: RunPartition, events: list[Event], cuts: Iterable[int], start: RunPartition | None
) -> tuple[set[str], RunPartition | None]:
    """``_apply_all`` of ``events`` on ``result``, a clean fold of every event before them (``start``,
    itself a checkpoint, when not None). Returns the heartbeats refused and the checkpoints (newest
    first, chained onto ``start``): ``result`` as it was before ``events[cut]`` for each cut given
    and each of ``_CHECKPOINT_DEPTHS``, where no later event is a cancel (which would take back a
    success before it: the events before a cut must be a fold of their own).
    """
    after_cancels = max((i + 1 for i, e in enumerate(events) if _cancelled_attempt(e) is not None), default=0)
    taken = sorted(
        {
            c
            for c in (*cuts, *(len(events) - d for d in _CHECKPOINT_DEPTHS))
            if after_cancels <= c < len(events)
        }
        - {0}
    )
    refused: set[str] = set()
    checkpoints = start
    done = 0
    for cut in taken:
        refused |= _apply_all(result, events[done:cut])
        done = cut
        kept = result.copy()
        kept.checkpoint = checkpoints
        checkpoints = kept
    refused |= _apply_all(result, events[done:])
    _trim(checkpoints)
    return refused, checkpoints


def _trim(checkpoints: RunPartition | None) -> None:
    # The oldest one is let go in place: checkpoints are shared by the partitions folded from them,
    # and to any of them an older checkpoint is only a re-fold spared for an even later event.
    for _ in range(_MAX_CHECKPOINTS - 1):
        if checkpoints is None:
            return
        checkpoints = checkpoints.checkpoint
    if checkpoints is not None:
        checkpoints.checkpoint = None


def fold_ahead(partition: RunPartition, events: Iterable[Event]) -> RunPartition:
    """``partition`` as it will look once ``events``, written after it was published, are folded.

    A writer's view for deciding what to do next (the completing callback: what its success made
    ready), never a projection: the events are applied in ULID order on top of the partition, which
    need not hold its own events, and an event the partition already applied is skipped by its
    idempotency key. What the compactor's ``fold_run`` publishes stays the truth; a decision taken
    from this view must be one that view and truth can only disagree on harmlessly.
    """
    result = partition.copy()
    new = _facts_ahead(partition, events)
    _apply_all(result, [new[i] for i in sorted(new)])
    return result


def fold_further_ahead(ahead: RunPartition, after: str, events: Iterable[Event]) -> RunPartition | None:
    """``ahead`` (``fold_ahead`` of a partition over events none newer than ``after``) with ``events``
    folded too: what ``fold_ahead`` of that partition over all of them gives, or None where only that
    fold from the start gets it right. ``ahead`` is not modified; with nothing new, it is returned.

    A callback's view folds this instance's unpublished writes ahead of the published partition; one
    more write then costs its own fold, not one of them all. Applying the older events first and the
    newer ones after is the same pass over them in ULID order, with one exception: a cancel among the
    newer events of an attempt whose success the older ones applied, which a single pass refuses
    (``_finished``) since the cancel comes after it.
    """
    new = _facts_ahead(ahead, events)
    if not new:
        return ahead
    if not _extends(ahead, after, new):
        return None
    result = ahead.copy()
    _apply_all(result, [new[i] for i in sorted(new)])
    return result


def _facts_ahead(partition: RunPartition, events: Iterable[Event]) -> dict[str, Event]:
    """``events`` not folded into ``partition`` yet, by id; heartbeats are left out (a writer's view
    decides what to do next, and liveness decides nothing there)."""
    return {e.event_id: e for e in events if e.event_id not in partition.events and beat_attempt(e) is None}


def _extends(base: RunPartition, after: str, new: dict[str, Event]) -> bool:
    """Whether applying ``new`` in ULID order on ``base``, a clean fold of events none newer than
    ``after``, is the clean fold of them all: every one is newer, and none cancels a success ``base``
    applied (a single pass reads the cancels first and refuses that success)."""
    return min(new) > after and not _cancels_a_success(base, new.values())


def _cancelled_attempt(event: Event) -> tuple[str, int, str] | None:
    d = event.data
    if isinstance(d, TaskFinished) and d.outcome == "cancelled":
        return d.task_key, d.attempt, d.attempt_id
    return None


def _cancels_a_success(base: RunPartition, events: Iterable[Event]) -> bool:
    """Whether a new cancel targets an attempt ``base`` shows succeeded (its success must not apply)."""
    for event in events:
        attempt = _cancelled_attempt(event)
        task = base.tasks.get(attempt[0]) if attempt is not None else None
        if (
            attempt is not None
            and task is not None
            and task.state == TaskState.SUCCEEDED.value
            and (task.attempt, task.attempt_id) == attempt[1:]
        ):
            return True
    return False


def _apply_all(partition: RunPartition, events: list[Event]) -> set[str]:
    """Apply ``events`` (ULID order, no superseded heartbeat) in place; returns the heartbeats refused."""
    ctx = FoldContext(partition)
    beats = partition.beats = {} if partition.beats is None else partition.beats
    refused: set[str] = set()
    for event in events:
        if (attempt := _cancelled_attempt(event)) is not None:
            ctx.cancels[attempt] = max(ctx.cancels.get(attempt, ""), event.event_id)
    for event in events:
        partition.events[event.event_id] = event
        if isinstance(event.data, UnknownEvent):
            continue  # recorded so a rebuild sees it, otherwise a no-op (behavior §0)
        if (beat := beat_attempt(event)) is not None:
            beats[beat] = event.event_id
            if not apply(ctx, event):
                refused.add(event.event_id)
            continue  # liveness, not a fact with a key: it records no idempotency row
        if apply(ctx, event):
            partition.idempotency[event.idempotency_key] = _idempotency_row(
                event.tenant_id,
                event.workspace_id,
                event.idempotency_key,
                event.event_id,
                event.event_type,
                event.timestamp_ms,
                event.event_id,  # row_version
            )
    return refused
