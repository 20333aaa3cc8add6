"""The sensor projection: sensor events of the ledger (and run-status items) folded into the sensor
tables under ``automation/sensors/`` (head, CAS and ledger reading are ``_folded_projection``'s).

The fold's compare-and-set is a function of the event set (``servo.core.sensor_fold``), so the
projection keeps the events themselves and derives the ``sensors``, ``sensor_evaluations`` and
``sensor_inbox`` rows from them on every publish: a rebuild from the ledger gives the same rows. History
older than the retention (§5: 30 days) is folded into per-sensor checkpoints as the projection is
rewritten (``servo.core.sensor_retention``); a rebuild at the same clock applies the same cut. A
projection written before checkpoints existed is read as it is (no checkpoint: every event kept) and
takes its first cut at its next publish.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from servo.core.events import Event
from servo.core.sensor_retention import RETENTION_MS
from servo.core.sensor_rows import SensorRunItemRow, SensorTables, table_rows
from servo.projections.sensor_tables import (
    SENSOR_CHECKPOINTS,
    SENSOR_EVENTS,
    SENSOR_RUN_ITEMS,
    SENSOR_TABLES,
)
from servo.services import _compaction_ledger as ledger
from servo.services._folded_projection import FoldedProjection
from servo.services.context import ServiceContext


def _from_rows(rows: Mapping[str, list[Any]]) -> SensorTables:
    return SensorTables.from_rows(
        rows[SENSOR_EVENTS.name], rows[SENSOR_RUN_ITEMS.name], rows[SENSOR_CHECKPOINTS.name]
    )


# The cut moves by whole hours: a checkpoint's boundary then changes (and its projection is published
# for it alone) at most once an hour, not at every sweep.
CUT_STEP_MS = 3_600_000


def retention_boundary(now_ms: int) -> str:
    """The event id before which sensor history is let go at ``now_ms`` (30 days, and up to an hour)."""
    cut = now_ms - RETENTION_MS
    return ledger.ulid_floor(cut - cut % CUT_STEP_MS)


def _fold(state: SensorTables, events: list[Event], now_ms: int) -> SensorTables:
    # History past the retention goes as the projection is rewritten anyway (no write of its own).
    return state.with_events(events).with_checkpoints(retention_boundary(now_ms))


PROJECTION = FoldedProjection("sensors", SENSOR_TABLES, _from_rows, table_rows, _fold, lambda s: not s.events)


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
    let the history past the retention go, and publish (also when only the clock moved;
    ``publish=False``: only read them so).

    Raises:
        Conflict: lost the head's CAS race too many times in a row.
    """
    items = list(run_items)
    boundary = retention_boundary(ctx.clock_ms())

    def settle(tables: SensorTables) -> SensorTables:
        # After the run items, as a rebuild does: the cut reads the items it may let go.
        return tables.with_run_items(items).with_checkpoints(boundary)

    return PROJECTION.refresh(
        ctx, tenant_id, workspace_id, hint, lookback_ms=lookback_ms, settle=settle, publish=publish
    )


def rebuild_sensors(
    events: Iterable[Event], run_items: Iterable[SensorRunItemRow] = (), now_ms: int | None = None
) -> SensorTables:
    """The tables from a whole ledger's events and the run items (what a live projection must equal);
    with ``now_ms``, without the history a live projection refreshed then has let go."""
    tables = SensorTables().with_events(events).with_run_items(run_items)
    return tables if now_ms is None else tables.with_checkpoints(retention_boundary(now_ms))
