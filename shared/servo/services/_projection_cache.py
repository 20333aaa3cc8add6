"""What a warm instance remembers about one workspace's published state, in three independent parts.

Shared by the request threads of one instance (functions-framework serves 8 at once), so each part
guards its own state with its own lock:

* ``FileCache``: decoded immutable projection files (named by content, so a path never goes stale);
* ``AppliedIds``: ledger ids known applied, so a compaction need not read them again;
* ``HeadRegister``: the newest head pointer seen, and when.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Container, Iterable, MutableMapping
from typing import Any

from servo.projections import layout

_CACHE_KEY = "servo.projections"

# The manifest keeps 2,000 applied ids for every reader; an instance remembers those of every head it
# sees and more, so a sweep after a bigger burst reads the excess once, not on every tick. 50,000 ids
# are about 4 MB.
MAX_APPLIED_IDS = 50_000

Head = tuple[int, layout.Pointer, bytes, layout.Manifest]  # generation, pointer, its bytes, manifest


class FileCache:
    """Decoded immutable files by key, least recently used first out."""

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._files: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._files.get(key)
            if value is not None:
                self._files.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._files[key] = value
            self._files.move_to_end(key)
            while len(self._files) > self.max_entries:
                self._files.popitem(last=False)


class AppliedIds:
    """Ledger ids a published head of this store shows applied (or that hold nothing to apply): the
    recent ids of every head remembered, and those a compaction found applied; the oldest noted go
    first past ``max_ids``.

    Applied stays applied (every later head descends from that one), so this memory can only spare a
    read, never hide an object that still needs folding.
    """

    def __init__(self, max_ids: int = MAX_APPLIED_IDS) -> None:
        self.max_ids = max_ids
        self._ids: dict[str, None] = {}  # insertion-ordered
        self._lock = threading.Lock()

    def note(self, event_ids: Iterable[str]) -> None:
        with self._lock:
            self._ids.update(dict.fromkeys(event_ids))
            excess = len(self._ids) - self.max_ids
            for stale in list(itertools.islice(self._ids, max(excess, 0))):
                del self._ids[stale]

    def view(self) -> Container[str]:
        """For membership tests (a live view: no copy per compaction)."""
        return self._ids.keys()


class HeadRegister:
    """The newest head this instance read or published.

    Request threads finish in any order: one that read an older generation must not replace the
    newer head another thread read or published (the pointer's generation only grows).
    """

    def __init__(self) -> None:
        self.head: Head | None = None
        self._seen_at = 0.0  # time.monotonic() when ``head`` was read, published or confirmed
        self._lock = threading.Lock()

    def remember(self, head: Head) -> None:
        with self._lock:
            if self.head is None or head[0] >= self.head[0]:
                self.head, self._seen_at = head, time.monotonic()

    def confirm(self) -> None:
        """A read just found the remembered head still current."""
        self._seen_at = time.monotonic()

    def age_ms(self) -> float:
        return (time.monotonic() - self._seen_at) * 1000


class ProjectionCache:
    """The three parts together, as one workspace's warm state; a head remembered also notes the ids
    its manifest shows applied."""

    def __init__(self, max_entries: int = 512, max_applied_ids: int = MAX_APPLIED_IDS) -> None:
        self.files = FileCache(max_entries)
        self.applied = AppliedIds(max_applied_ids)
        self.heads = HeadRegister()

    def remember_head(self, head: Head) -> None:
        self.applied.note(head[3].recent_event_ids)
        self.heads.remember(head)


def projection_cache(cache: MutableMapping[str, Any] | None) -> ProjectionCache:
    """The ProjectionCache kept in a caller's cache dict (a fresh one when there is none)."""
    if cache is None:
        return ProjectionCache()
    found = cache.get(_CACHE_KEY)
    if not isinstance(found, ProjectionCache):
        found = cache[_CACHE_KEY] = ProjectionCache()
    return found
