"""A run's source as the API shows it: RunTriggered's ``trigger`` with camelCase keys, nested ids lifted.

The ledger keeps the trigger as the source wrote it (``{type: cron, schedule_id, tick_id}``,
``{type: rerun, rerun: {parent_run_id, kind}}``); the API answers ``trigger{type, its ids}`` (automation
§4). Flattening one level keeps every source's ids without a table per source type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def trigger_view(trigger: Mapping[str, Any] | None, trigger_type: str | None) -> dict[str, Any] | None:
    """``trigger{type, ids}`` of a run; a row stored before the trigger was kept shows its type alone."""
    if not trigger:
        return {"type": trigger_type} if trigger_type else None
    view: dict[str, Any] = {}
    for key, value in trigger.items():
        inner = value.items() if isinstance(value, Mapping) else ((key, value),)
        for name, item in inner:
            if isinstance(item, str):  # ids are strings; the API document says so
                view.setdefault(_camel(name), item)
    return view
