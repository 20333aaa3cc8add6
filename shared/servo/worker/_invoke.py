"""Calling one ``@asset`` function: its context, its upstream arguments, sync or async.

Servo has no IO managers, so an upstream "input" is that upstream's reported output (materialization id,
row count, metadata) taken from the dispatch payload — never data: this run's, or for an upstream
outside the run, its last successful materialization's. Everything about the asset comes from
the definition the SDK attached (``fn.__servo_asset__``).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from servo.core.protocol import DispatchEnvelope
from servo.errors import UpstreamNotMaterialized
from servo.sdk import AssetContext, definition_of
from servo.worker._heartbeat import CancelSignal

AssetFunction = Callable[..., Any]

# Loggers whose records are captured into the task's stderr (the context logger lives under this name).
USER_LOGGERS: tuple[str, ...] = ("servo.asset",)  # servo.sdk's LOGGER_ROOT


class Reporter:
    """Receives the context's progress and metadata; the heartbeat and the completion read it."""

    __slots__ = ("_lock", "_message", "_metadata", "_pct")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._message: str | None = None
        self._pct: int | None = None
        self._metadata: dict[str, Any] = {}

    def progress(self, message: str | None, pct: float | None = None) -> None:
        with self._lock:
            self._message = message
            self._pct = None if pct is None else round(pct)

    def metadata(self, values: Mapping[str, Any]) -> None:
        with self._lock:
            self._metadata.update(values)

    def snapshot(self) -> tuple[str | None, int | None]:
        with self._lock:
            return self._message, self._pct

    def collected(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._metadata)


def timeout_of(envelope: DispatchEnvelope, fn: AssetFunction) -> float | None:
    """The attempt's time bound: the payload's (what the control plane planned with), else the asset's."""
    value = envelope.payload.get("timeoutSeconds")
    if value is None:
        value = definition_of(fn).timeout_seconds
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def _upstream(envelope: DispatchEnvelope) -> Mapping[str, Mapping[str, Any]]:
    raw = envelope.payload.get("upstream")
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, Mapping)}


def build_context(
    fn: AssetFunction, envelope: DispatchEnvelope, reporter: Reporter, cancel: CancelSignal
) -> AssetContext:
    """The asset's context for this attempt.

    Raises:
        InvalidPartitionKey: the envelope's partition key does not fit the asset (missing, extra,
            wrong dimensions): a configuration problem, so the asset is never run.
    """
    return AssetContext(
        definition=definition_of(fn),
        run_id=envelope.run_id,
        task_key=envelope.task_key,
        attempt=envelope.attempt,
        partition_key=envelope.partition_key,
        tenant_id=envelope.tenant_id,
        workspace_id=envelope.workspace_id,
        reporter=reporter,
        upstream=_upstream(envelope),
        is_cancelled=cancel.is_set,
    )


class _NoOutput(Mapping[str, Any]):
    """An upstream without an output: empty and falsy, and reading a field says why in plain words."""

    def __init__(self, upstream_key: str) -> None:
        self._key = upstream_key

    def __getitem__(self, field: str) -> Any:
        raise UpstreamNotMaterialized(self._key, field)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"<no materialization of {self._key}>"


def call_asset(fn: AssetFunction, context: AssetContext) -> Any:
    """Run the asset: upstream outputs go to the parameters that receive them; coroutines via asyncio.

    An upstream the control plane sent no output for (neither this run nor a recent one materialized
    it) is passed as an empty mapping whose reads raise ``UpstreamNotMaterialized``.
    """
    upstream = context.upstream
    kwargs: dict[str, Any] = {}
    for dep in context.definition.deps:
        if dep.parameter_name:
            key = str(dep.upstream_key)
            output = upstream.get(key)
            kwargs[dep.parameter_name] = dict(output) if output is not None else _NoOutput(key)
    result = fn(context, **kwargs)
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    return result
