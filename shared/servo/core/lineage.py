"""The execution lineage ref (automation §6.5): one string naming the exact attempt and output of a
materialization, the same on the task row and the partition row. Kept apart from ``partition_status``
so the run fold can fill task rows without importing the partition definitions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servo.core.canonical_json import canonical_dumps

__all__ = ["execution_lineage_ref", "reported_int", "reported_str"]


def reported_int(value: object) -> int | None:
    """A worker-reported integer, or None (a bool is not one)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def reported_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def execution_lineage_ref(
    run_id: str, task_key: str, attempt: int, materialization_id: str | None, output: Mapping[str, Any]
) -> str:
    """Canonical JSON of ``{runId, taskKey, attempt, materializationId, deltaTable, deltaVersion,
    deltaPartition}`` with the values the worker reported (absent ones omitted): one string that names
    the exact attempt and output, on the task row and the partition row alike."""
    ref: dict[str, Any] = {"runId": run_id, "taskKey": task_key, "attempt": attempt}
    reported = {
        "materializationId": materialization_id or reported_str(output.get("materializationId")),
        "deltaTable": reported_str(output.get("deltaTable")),
        "deltaVersion": reported_int(output.get("deltaVersion")),
        "deltaPartition": reported_str(output.get("deltaPartition")),
    }
    ref.update({k: v for k, v in reported.items() if v is not None})
    return canonical_dumps(ref)
