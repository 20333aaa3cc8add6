"""GCS operations per task, counted at the ObjectStore port, and what they cost at list price.

Prices (GCS Standard storage, list price per 1,000 operations): Class A (writes, lists) $0.005,
Class B (reads) $0.0004. Deletes are counted as writes by the port counter (GCS does not charge for
them; none happen on the happy path).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench.e2e import RunMeasure

CLASS_A_PER_1000_OPS = 0.005
CLASS_B_PER_1000_OPS = 0.0004
GOAL_WRITES_LISTS_PER_TASK = 6
GOAL_READS_PER_TASK = 10


def _split(ops: Mapping[tuple[str, str], int]) -> tuple[int, int]:
    writes_lists = sum(v for (_, op), v in ops.items() if op in ("write", "list"))
    reads = sum(v for (_, op), v in ops.items() if op == "read")
    return writes_lists, reads


def cost_per_1000_tasks(writes_lists_per_task: float, reads_per_task: float) -> float:
    """USD for 1,000 tasks at the list prices above."""
    return writes_lists_per_task * CLASS_A_PER_1000_OPS + reads_per_task * CLASS_B_PER_1000_OPS


def ops_results(label: str, m: RunMeasure) -> dict[str, Any]:
    """Per-task figures of one counted run, plus the breakdown by prefix and operation."""
    writes_lists, reads = _split(m.ops)
    wl, rd = writes_lists / m.tasks, reads / m.tasks
    prefix = f"ops.{label}"
    out: dict[str, Any] = {
        f"{prefix}.tasks": m.tasks,
        f"{prefix}.writes_lists_per_task": round(wl, 2),
        f"{prefix}.reads_per_task": round(rd, 2),
        f"{prefix}.usd_per_1000_tasks": round(cost_per_1000_tasks(wl, rd), 5),
        f"{prefix}.goal_met": wl <= GOAL_WRITES_LISTS_PER_TASK and rd <= GOAL_READS_PER_TASK,
    }
    if m.port is not None:
        # The port's own counter over the same window; it must agree with the prefix tally.
        out[f"{prefix}.port_writes_lists"] = m.port.writes + m.port.lists
        out[f"{prefix}.port_reads"] = m.port.reads
    by_prefix: Counter[str] = Counter()
    for (name_prefix, op), count in m.ops.items():
        by_prefix[f"{name_prefix}:{op}"] += count
    for key, count in sorted(by_prefix.items()):
        out[f"{prefix}.by_prefix.{key}_per_task"] = round(count / m.tasks, 2)
    for event_type, count in sorted(m.ledger_types.items()):
        out[f"{prefix}.ledger_events_per_task.{event_type}"] = round(count / m.tasks, 2)
    return {**out, **cpu_results(label, m)}


def cpu_results(label: str, m: RunMeasure) -> dict[str, Any]:
    """CPU milliseconds a task of the stack's processes (issue 21), over the counted window."""
    if m.cpu is None:
        return {}
    tasks = m.cpu_tasks or m.tasks
    out = {
        f"cpu.{label}.ms_per_task": round(m.cpu.stack_s * 1000 / tasks, 2),
        # The bench's own client thread (its trigger requests), left out of the figure above.
        f"cpu.{label}.client_ms_per_task": round(m.cpu.client_s * 1000 / tasks, 2),
    }
    if m.cpu.children_s:
        # The emulator stack's own processes, without the bench process (its worker and proxy).
        out[f"cpu.{label}.children_ms_per_task"] = round(m.cpu.children_s * 1000 / tasks, 2)
    return out


PRICES = {
    "ops.price_class_a_usd_per_1000_ops": CLASS_A_PER_1000_OPS,
    "ops.price_class_b_usd_per_1000_ops": CLASS_B_PER_1000_OPS,
}
