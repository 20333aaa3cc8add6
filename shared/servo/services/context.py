"""What every service needs, built once per process at the edge and passed in.

Services never read the environment or the clock themselves: the clock and the id factory are
fields here, so tests drive time and ids deterministically.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from servo.core.ids import UlidFactory
from servo.settings import Settings

T = TypeVar("T")

if TYPE_CHECKING:
    from servo.dispatch import TaskQueue
    from servo.services.read_model import Snapshot
    from servo.store import ObjectStore


class LedgerHook(Protocol):
    """Called after events were appended to a workspace's ledger, with their object names.

    In the embedded mode it hands them to the compactor; on GCP the finalize event does that job.
    ``await_publish`` is False for writers that never read back what they wrote (the worker's
    callbacks, the controller's side effects), so they need not wait for the publish. ``urgent`` is
    False when every event written only records progress (``ledger.PROGRESS_EVENTS``): its publish
    unblocks nothing, so it may wait to share a publish with what follows.
    """

    def __call__(
        self,
        ctx: ServiceContext,
        tenant_id: str,
        workspace_id: str,
        names: Sequence[str],
        /,
        *,
        await_publish: bool,
        urgent: bool = True,
    ) -> None: ...


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class ServiceContext:
    settings: Settings
    store: ObjectStore  # bucket root: names carry {tenant}/{workspace}/
    clock_ms: Callable[[], int] = wall_clock_ms
    ids: UlidFactory = field(default_factory=lambda: UlidFactory(os.urandom))
    queue: TaskQueue | None = None
    after_ledger_write: LedgerHook | None = None
    # Called before a reader serves a user a workspace's published state: where this process holds
    # back publishes of what it wrote (the embedded group commit), it publishes them first, so a
    # run is readable the moment its trigger answered (design §5: the embedded mode is read-your-writes).
    before_read: Callable[[str, str], None] | None = None
    # Warm-instance cache of decoded projection state, keyed by head generation (read model / compactor).
    cache: dict[str, Any] = field(default_factory=dict)

    def workspace_store(self, tenant_id: str, workspace_id: str) -> ObjectStore:
        from servo.store import ScopedStore

        return ScopedStore(self.store, tenant_id, workspace_id)

    def workspace_cache(self, tenant_id: str, workspace_id: str) -> dict[str, Any]:
        """This instance's cache for one workspace: shared by the compactor and the read model, since
        every file below the head pointer is immutable."""
        found: dict[str, Any] = self.cache.setdefault(f"read:{tenant_id}/{workspace_id}", {})
        return found

    def settle(self, tenant_id: str, workspace_id: str) -> None:
        """Before a user's read: what this process wrote to the workspace is published (``before_read``)."""
        if self.before_read is not None:
            self.before_read(tenant_id, workspace_id)

    def instance_state(self, key: str, factory: Callable[[], T]) -> T:
        """The one object this instance keeps under ``key`` across requests (made on first use)."""
        found = self.cache.get(key)
        if found is None:
            found = self.cache.setdefault(key, factory())
        return found

    def snapshot(self, tenant_id: str, workspace_id: str, *, max_age_ms: int = 0) -> Snapshot:
        """The workspace's published state (head -> manifest -> Parquet; never the ledger); with
        ``max_age_ms``, the head this instance saw that recently, if any, without reading it."""
        from servo.services.read_model import load_snapshot

        store = self.workspace_store(tenant_id, workspace_id)
        cache = self.workspace_cache(tenant_id, workspace_id)
        return load_snapshot(store, cache=cache, max_age_ms=max_age_ms)

    def last_seen_snapshot(self, tenant_id: str, workspace_id: str) -> Snapshot | None:
        """The last head this instance read or published, with no read (None when cold): the current
        state where this process is the only publisher (the embedded stack), a stale one elsewhere."""
        from servo.services.read_model import last_seen_snapshot

        store = self.workspace_store(tenant_id, workspace_id)
        return last_seen_snapshot(store, self.workspace_cache(tenant_id, workspace_id))

    def new_id(self) -> str:
        return self.ids.new(self.clock_ms())
