"""CountingStore: counts operations at the port, for the cost benchmark (design §10: ops per task).

Attempts are counted, not successes: a write that loses its precondition still costs a GCS operation.
"""

from __future__ import annotations

import builtins
import threading
from dataclasses import dataclass

from servo.store._port import DEFAULT_CONTENT_TYPE, ObjectMeta, ObjectStore, StoredObject


@dataclass(frozen=True, slots=True)
class OpCounts:
    """Operations seen so far: reads (get), writes (create/put/delete), lists, and bytes moved."""

    reads: int = 0
    writes: int = 0
    lists: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    def __sub__(self, other: OpCounts) -> OpCounts:
        return OpCounts(
            self.reads - other.reads,
            self.writes - other.writes,
            self.lists - other.lists,
            self.bytes_read - other.bytes_read,
            self.bytes_written - other.bytes_written,
        )


class CountingStore:
    """Wraps an ObjectStore and counts what passes through it; thread-safe."""

    def __init__(self, inner: ObjectStore) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        # Plain ints under the lock: this sits under every store call of a benchmarked stack, so
        # counting must cost next to nothing (rebuilding a dataclass per call showed up in profiles).
        self._counts = dict.fromkeys(("reads", "writes", "lists", "bytes_read", "bytes_written"), 0)

    def snapshot(self) -> OpCounts:
        """Return the counts so far (an immutable copy)."""
        with self._lock:
            return OpCounts(**self._counts)

    def reset(self) -> None:
        """Set every count back to zero."""
        with self._lock:
            for key in self._counts:
                self._counts[key] = 0

    def _add(self, **deltas: int) -> None:
        with self._lock:
            for key, value in deltas.items():
                self._counts[key] += value

    def get(self, name: str) -> StoredObject | None:
        self._add(reads=1)
        got = self._inner.get(name)
        if got is not None:
            self._add(bytes_read=len(got.data))
        return got

    def create(self, name: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> int:
        self._add(writes=1, bytes_written=len(data) if isinstance(data, bytes) else 0)
        return self._inner.create(name, data, content_type=content_type)

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> int:
        self._add(writes=1, bytes_written=len(data) if isinstance(data, bytes) else 0)
        return self._inner.put(name, data, if_generation_match=if_generation_match, content_type=content_type)

    def list(
        self,
        prefix: str,
        *,
        start_offset: str | None = None,
        end_offset: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[ObjectMeta]:
        self._add(lists=1)
        return self._inner.list(prefix, start_offset=start_offset, end_offset=end_offset, limit=limit)

    def delete(self, name: str, *, if_generation_match: int | None = None) -> bool:
        self._add(writes=1)
        return self._inner.delete(name, if_generation_match=if_generation_match)
