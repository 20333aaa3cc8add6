"""Heartbeats are liveness, not history: per attempt only the newest one counts (fold internals).

A run that heartbeats for hours must not grow with every beat: its state would be O(heartbeats), and
every base rewrite would copy them all. A heartbeat only says "this attempt was alive at t", and a
newer one says all an older one did, so the fold keeps, per attempt (task, attempt, attempt id), the
newest heartbeat event and forgets the others. Idempotency for a heartbeat is therefore "not newer than
the one kept": a redelivered or late heartbeat changes nothing, and heartbeats record no idempotency
rows. The fold then equals one clean ULID-order fold of the run's other events and the newest
heartbeat of each attempt, whatever the order or batching the events come in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from servo.core.events import EncodedEvent, Event, TaskHeartbeat, as_event
from servo.core.state import RunPartition

Attempt = tuple[str, int, str]  # (task_key, attempt, attempt_id)

# Canonical JSON sorts keys and has no spaces: a stored heartbeat's body holds exactly this, so the
# rest of a big run's stored events need not be decoded to find its heartbeats.
_STORED_MARK = '"event_type":"TaskHeartbeat"'


def beat_attempt(event: Event) -> Attempt | None:
    """The attempt a heartbeat is about, or None for any other event."""
    d = event.data
    return (d.task_key, d.attempt, d.attempt_id) if isinstance(d, TaskHeartbeat) else None


def kept_beats(part: RunPartition) -> dict[Attempt, str]:
    """Attempt -> id of the newest heartbeat ``part`` keeps (worked out once, then kept on it)."""
    if part.beats is None:
        beats: dict[Attempt, str] = {}
        for event_id, value in part.events.items():
            if isinstance(value, EncodedEvent) and _STORED_MARK not in value.body:
                continue
            attempt = beat_attempt(as_event(value))
            if attempt is not None and beats.get(attempt, "") < event_id:
                beats[attempt] = event_id
        part.beats = beats
    return part.beats


def newest_beats(events: Iterable[Event], kept: Mapping[Attempt, str]) -> dict[str, Event]:
    """``events`` by id without every heartbeat superseded by a newer one (among them or ``kept``)."""
    out: dict[str, Event] = {}
    newest = dict(kept)
    beats: list[tuple[Attempt, Event]] = []
    for event in events:
        attempt = beat_attempt(event)
        if attempt is None:
            out[event.event_id] = event
        elif newest.get(attempt, "") < event.event_id:
            newest[attempt] = event.event_id
            beats.append((attempt, event))
    out.update((e.event_id, e) for a, e in beats if newest[a] == e.event_id)
    return out


def superseded(part: RunPartition, event: Event) -> bool:
    """Whether ``event`` is a heartbeat ``part`` keeps a newer one of (it would change nothing)."""
    attempt = beat_attempt(event)
    return attempt is not None and kept_beats(part).get(attempt, "") >= event.event_id
