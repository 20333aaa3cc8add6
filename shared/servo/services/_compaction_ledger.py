"""Finding and reading the ledger objects a compaction has not applied yet.

The ledger is never listed whole: listing starts a look-back window before the watermark (the
newest event already applied), so objects written late by a writer with a slow clock, or uploaded
slowly, are still found; ids applied inside that window are kept in the manifest (and remembered by
the instance, ``AppliedIds``) and skipped without a read. An object older than the
window is found through the name its finalize event hands over.
"""

from __future__ import annotations

import threading
from collections.abc import Container, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ulid import base32

from servo.core.errors import InvalidEvent, InvalidId, InvalidInput
from servo.core.events import (
    EncodedEvent,
    Event,
    as_event,
    decode_event,
    event_id_from_object_name,
    ledger_object_name,
)
from servo.core.ids import ulid_time_ms
from servo.services._io_pool import io_map
from servo.store import ObjectStore

LEDGER_PREFIX = "ledger/orchestration/"
DEFAULT_LOOKBACK_MS = 10_000
# The timers sweep looks further back (it is the only net for an object whose finalize event was lost
# *and* that landed more than 10 s late); it runs every minute, so 2 minutes covers every instant twice.
SWEEP_LOOKBACK_MS = 2 * 60_000
# Applied ids are kept for the sweep's whole look-back, so it skips what the finalize path already
# applied instead of reading every object about twice more. Capped, so that the manifest does not grow
# with the event rate: past the cap only the newest ids are kept (those the finalize path's own
# window needs), and the sweep reads the older ones again. 2,000 ids are about 56 KB of manifest.
MAX_RECENT_IDS = 2_000
# Writers reject event ids more than 5 minutes ahead; one further out must not drag the watermark.
MAX_FUTURE_MS = 300_000


def ulid_floor(ms: int) -> str:
    """The smallest 10-character ULID time prefix at or after ``ms`` (clamped at 0)."""
    return base32.encode_timestamp(max(ms, 0).to_bytes(6, "big"))


# Events this process wrote lately, kept for its own compactions (see ``WrittenEvents``): enough for a
# 1,000-task fan-out's burst (about four events a task) and then some.
MAX_WRITTEN_EVENTS = 16_384
_WRITTEN_KEY = "written-events"


class WrittenEvents:
    """The events this process just wrote to one workspace's ledger, by object name.

    Where the compaction runs in the writer's process (the embedded stack), the writer notes each
    event it created, so the compaction takes the event instead of reading its object back and
    decoding it. Only an event whose object holds exactly its encoding is noted (ledger objects are
    never overwritten), so what is taken is what a read would give. The ledger stays the truth: names
    still come from the hand-over or a listing, and anything not noted (another writer's object, one
    evicted) is read. Bounded: the oldest notes go first.
    """

    def __init__(self, cap: int = MAX_WRITTEN_EVENTS) -> None:
        self._cap = cap
        self._events: dict[str, EncodedEvent] = {}
        self._lock = threading.Lock()

    def note(self, name: str, event: Event, body: bytes) -> None:
        """``body``: the bytes of the object ``name``, which are ``event``'s encoding."""
        encoded = EncodedEvent(body.decode("utf-8"), event)
        with self._lock:
            self._events[name] = encoded
            while len(self._events) > self._cap:
                del self._events[next(iter(self._events))]

    def taken(self, name: str) -> EncodedEvent | None:
        """The event noted for ``name`` with its object's bytes (as a segment stores it)."""
        return self._events.get(name)

    def get(self, name: str) -> Event | None:
        found = self._events.get(name)
        return None if found is None else found.event


def written_events(cache: MutableMapping[str, Any]) -> WrittenEvents:
    """The ``WrittenEvents`` kept in a workspace's instance cache (made on first use)."""
    found = cache.get(_WRITTEN_KEY)
    if found is None:
        found = cache.setdefault(_WRITTEN_KEY, WrittenEvents())
    assert isinstance(found, WrittenEvents)
    return found


@dataclass(slots=True)
class Found:
    """Events read from the ledger, and objects that could not be used (name -> reason)."""

    # Each event as found: those taken from ``WrittenEvents`` with their objects' bytes (EncodedEvent),
    # which a fold keeps and a publish stores as they are instead of encoding them again.
    stored: list[Event | EncodedEvent] = field(default_factory=list)
    malformed: dict[str, str] = field(default_factory=dict)
    seen_ids: set[str] = field(default_factory=set)  # every id read, good or bad

    @property
    def events(self) -> list[Event]:
        return [as_event(value) for value in self.stored]


def candidate_names(
    store: ObjectStore,
    watermark: str,
    applied: Container[str],
    hint: Iterable[str],
    lookback_ms: int,
    *,
    list_ledger: bool = True,
) -> tuple[list[str], dict[str, str]]:
    """Ledger names to read: the listed window (unless ``list_ledger`` is off) plus hints, minus the
    ids known ``applied``."""
    bad: dict[str, str] = {}
    names: dict[str, None] = {}
    start = None
    if watermark:
        start = LEDGER_PREFIX + ulid_floor(ulid_time_ms(watermark) - lookback_ms)
    for meta in store.list(LEDGER_PREFIX, start_offset=start) if list_ledger else ():
        names[meta.name] = None
    for raw in hint:
        try:
            names[ledger_object_name(event_id_from_object_name(raw))] = None
        except InvalidInput as exc:
            bad[raw] = f"not a ledger object name: {exc}"
    wanted = []
    for name in names:
        try:
            event_id = event_id_from_object_name(name)
        except InvalidInput as exc:
            bad[name] = f"not a ledger object name: {exc}"
            continue
        if event_id not in applied:
            wanted.append(name)
    return wanted, bad


def read_events(
    store: ObjectStore,
    names: Iterable[str],
    tenant_id: str,
    workspace_id: str,
    written: WrittenEvents | None = None,
) -> Found:
    """Read and strictly decode each object (or take it from ``written``); anything unusable is
    reported, never raised."""
    found = Found()
    names = list(names)
    known = {} if written is None else {n: e for n in names if (e := written.taken(n)) is not None}
    unread = [n for n in names if n not in known]
    # Objects are independent and each read waits on the network: a batch is read concurrently.
    objects = dict(zip(unread, io_map(store.get, unread), strict=True))
    for name in names:
        event_id = event_id_from_object_name(name)
        value: Event | EncodedEvent
        if (taken := known.get(name)) is not None:
            value = taken
            event = as_event(taken)
        elif (obj := objects[name]) is None:
            found.malformed[name] = "object does not exist"
            continue
        else:
            try:
                value = event = decode_event(obj.data)
            except (InvalidEvent, InvalidId, InvalidInput) as exc:
                found.seen_ids.add(event_id)
                found.malformed[name] = f"invalid event: {exc}"
                continue
        found.seen_ids.add(event_id)
        if event.event_id != event_id:
            found.malformed[name] = f"event_id {event.event_id} does not match the object name"
        elif (event.tenant_id, event.workspace_id) != (tenant_id, workspace_id):
            found.malformed[name] = f"event of foreign scope {event.tenant_id}/{event.workspace_id}"
        else:
            found.stored.append(value)
    return found


def advance(watermark: str, ids: Iterable[str], now_ms: int) -> str:
    """The new watermark: the newest id seen that is not implausibly far in the future."""
    plausible = [i for i in ids if ulid_time_ms(i) <= now_ms + MAX_FUTURE_MS]
    return max([watermark, *plausible])


def all_applied(names: Iterable[str], applied: Container[str]) -> bool:
    """Whether every named ledger object is among the ids known ``applied`` (False if none is named,
    or a name is not a ledger object's: those are for the compaction to report)."""
    try:
        ids = {event_id_from_object_name(n) for n in names}
    except InvalidInput:
        return False
    return bool(ids) and all(i in applied for i in ids)


def recent_ids(ids: Iterable[str], watermark: str) -> tuple[str, ...]:
    """The applied ids the manifest keeps: the sweep's look-back window, newest first when capped."""
    return window(ids, watermark, SWEEP_LOOKBACK_MS)[-MAX_RECENT_IDS:]


def window(ids: Iterable[str], watermark: str, lookback_ms: int) -> tuple[str, ...]:
    """The ids still inside the look-back window of ``watermark``."""
    if not watermark:
        return ()
    floor = ulid_floor(ulid_time_ms(watermark) - lookback_ms)
    return tuple(sorted({i for i in ids if i >= floor}))
