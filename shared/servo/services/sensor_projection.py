"""The sensor projection: sensor events of the ledger (and run-status items) folded into the sensor
tables under ``automation/sensors/`` (head, CAS and ledger reading are ``_folded_projection``'s).

The fold's compare-and-set is a function of the whole event set (``servo.core.sensor_fold``), so the
projection keeps the events themselves and derives the ``sensors``, ``sensor_evaluations`` and
``sensor_inbox`` rows from them on every publish: a rebuild from the ledger gives the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from servo.core.events import Event
from servo.core.sensor_rows import SensorRunItemRow, SensorTables, table_rows
from servo.projections.sensor_tables import SENSOR_EVENTS, SENSOR_RUN_ITEMS, SENSOR_TABLES
from servo.services import _compaction_ledger as ledger
from servo.services._folded_projection import FoldedProjection
from servo.services.context import ServiceContext


def _from_rows(rows: Mapping[str, list[Any]]) -> SensorTables:
    return SensorTables.from_rows(rows[SENSOR_EVENTS.name], rows[SENSOR_RUN_ITEMS.name])


PROJECTION = FoldedProjection(
    "sensors",
    SENSOR_TABLES,
    _from_rows,
    table_rows,
    lambda state, events, _now: state.with_events(events),
    lambda s: not s.events,
)


def has_sensor_state(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> bool:
    """Whether this workspace ever recorded a sensor event (one read: its head)."""
    return PROJECTION.exists(ctx, tenant_id, workspace_id)


def refresh_sensors(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    hint: Iterable[str] = (),
    *,
    run_items: Iterable[SensorRunItemRow] = (),
    lookback_ms: int = ledger.SWEEP_LOOKBACK_MS,
    publish: bool = True,
) -> SensorTables:
    """Fold the sensor events written since the last publish (and the ``hint`` names), add ``run_items``,
    and publish (``publish=False``: only read them so).

    Raises:
        Conflict: lost the head's CAS race too many times in a row.
    """
    items = list(run_items)
    return PROJECTION.refresh(
        ctx,
        tenant_id,
        workspace_id,
        hint,
        lookback_ms=lookback_ms,
        settle=(lambda s: s.with_run_items(items)) if items else None,
        publish=publish,
    )


def rebuild_sensors(events: Iterable[Event], run_items: Iterable[SensorRunItemRow] = ()) -> SensorTables:
    """The tables from a whole ledger's events and the run items (what a live projection must equal)."""
    return SensorTables().with_events(events).with_run_items(run_items)
