"""AssetContext: what one attempt of an asset knows about itself, and how it talks back.

Progress and metadata go to a :class:`Reporter` the worker supplies; the worker forwards progress on
its heartbeats and metadata with the completion, so both reach the control plane (the reference kept
them in memory and dropped them, user-surface §1.5). Log records go to the ``servo.asset`` logger tree,
whose output the worker captures into the attempt's log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from servo.core.canonical_json import canonical_bytes
from servo.core.errors import InvalidInput
from servo.core.keys import AssetKey
from servo.sdk._asset import AssetDefinition
from servo.sdk._partitions import AssetPartition, resolve_partition

LOGGER_ROOT = "servo.asset"


class Reporter(Protocol):
    """Where an attempt's progress and metadata go; implemented by the worker.

    ``progress`` keeps the latest message and percentage (sent on the next heartbeat); ``metadata``
    merges key/values into what the completion reports as the asset's output metadata. Both are called
    from the asset's thread and must be thread-safe.
    """

    def progress(self, message: str | None, pct: float | None = None) -> None: ...

    def metadata(self, values: Mapping[str, Any]) -> None: ...


class InMemoryReporter:
    """A Reporter that keeps everything, for tests and local runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.progress_updates: list[tuple[str | None, float | None]] = []
        self.collected: dict[str, Any] = {}

    def progress(self, message: str | None, pct: float | None = None) -> None:
        with self._lock:
            self.progress_updates.append((message, pct))

    def metadata(self, values: Mapping[str, Any]) -> None:
        with self._lock:
            self.collected.update(values)


def _never_cancelled() -> bool:
    return False


@dataclass(frozen=True, slots=True, init=False)
class AssetContext:
    """The first argument of every asset function.

    Attributes:
        definition: the asset's frozen definition.
        partition_key: the partition being materialized: ``["date"]`` -> a ``date``, ``str()`` ->
            ``2025-03-01`` (``.canonical`` is the stored encoding, not for display);
            falsy for an unpartitioned asset.
        run_id, task_key, attempt, tenant_id, workspace_id: where this attempt belongs.
        upstream: upstream key -> that upstream's reported output (``materializationId``, ``rowCount``,
            ``metadata``): this run's, else (an upstream outside the run) its last successful
            materialization's; absent when there is none.
        log: a logger whose records land in this attempt's captured output.
    """

    definition: AssetDefinition
    partition_key: AssetPartition
    run_id: str
    task_key: str
    attempt: int
    tenant_id: str
    workspace_id: str
    upstream: Mapping[str, Mapping[str, Any]]
    log: logging.Logger
    _reporter: Reporter
    _is_cancelled: Callable[[], bool]

    def __init__(
        self,
        *,
        definition: AssetDefinition,
        run_id: str,
        task_key: str | None = None,
        attempt: int = 1,
        partition_key: str | None = None,
        tenant_id: str = "",
        workspace_id: str = "",
        reporter: Reporter | None = None,
        upstream: Mapping[str, Mapping[str, Any]] | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> None:
        """Build the context of one attempt.

        Raises:
            InvalidPartitionKey: ``partition_key`` does not fit the asset's partitions (missing for a
                partitioned asset, given for an unpartitioned one, wrong dimensions or values).
        """
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise InvalidInput(f"attempt must be an int >= 1, not {attempt!r}")
        key = str(definition.key)
        set_ = object.__setattr__
        set_(self, "definition", definition)
        set_(self, "partition_key", resolve_partition(definition.partitions, partition_key))
        set_(self, "run_id", run_id)
        set_(self, "task_key", task_key or key)
        set_(self, "attempt", attempt)
        set_(self, "tenant_id", tenant_id)
        set_(self, "workspace_id", workspace_id)
        set_(
            self,
            "upstream",
            MappingProxyType({k: MappingProxyType(dict(v)) for k, v in (upstream or {}).items()}),
        )
        set_(self, "log", logging.getLogger(f"{LOGGER_ROOT}.{key}"))
        set_(self, "_reporter", reporter if reporter is not None else InMemoryReporter())
        set_(self, "_is_cancelled", is_cancelled or _never_cancelled)

    @property
    def asset_key(self) -> AssetKey:
        return self.definition.key

    def report_progress(self, message: str, pct: int | None = None) -> None:
        """Tell the control plane how far the attempt is: ``servo status RUN_ID`` shows the latest
        message and percentage while the task runs (sent with the next heartbeat: within a second
        under ``servo dev``, within ``heartbeatTimeout / 5`` in production).

        Raises:
            InvalidInput: ``message`` is not a string or ``pct`` is not an int in 0..100.
        """
        if not isinstance(message, str):
            raise InvalidInput(f"report_progress message must be a string, not {message!r}")
        if pct is not None and (isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100):
            raise InvalidInput(f"report_progress pct must be an int in 0..100 or None, not {pct!r}")
        self._reporter.progress(message, pct)

    def add_metadata(self, **values: Any) -> None:
        """Attach key/values to this materialization (e.g. ``row_count=42``); later calls merge.

        Raises:
            CanonicalJsonError: a value the control plane cannot store (floats: use ints or strings),
                reported here rather than when the attempt completes.
        """
        canonical_bytes(values)
        self._reporter.metadata(values)

    def is_cancelled(self) -> bool:
        """True once the run is being cancelled or the attempt timed out; long loops should check it
        and return early. A cancel arrives with the next heartbeat (within a second under ``servo
        dev``); an asset that has not stopped within the cancel grace period is abandoned."""
        return self._is_cancelled()
