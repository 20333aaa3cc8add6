"""The sensor projection: sensor events of the ledger (and run-status items) folded into the sensor
tables under ``automation/sensors/`` (head, CAS and ledger reading are ``_folded_projection``'s).

The fold's compare-and-set is a function of the event set (``servo.core.sensor_fold``), so the
projection keeps the events themselves and derives the ``sensors``, ``sensor_evaluations`` and
``sensor_inbox`` rows from them on every publish: a rebuild from the ledger gives the same rows. History
older than the retention (§5: 30 days) is folded into per-sensor checkpoints as the projection is
rewritten (``servo.core.sensor_retention``) once settled (an hour), so a publish re-folds a bounded number
of events however long a sensor has run; what they showed stays as finished rows for the retention (the
``sensor_archived_*`` tables). A rebuild at the same clock applies the same cut. A
projection written before checkpoints existed is read as it is (no checkpoint: every event kept) and
takes its first cut at its next publish.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from servo.core.events import Event
from servo.core.sensor_retention import RETENTION_MS, SETTLE_MS
from servo.core.sensor_rows import SensorRunItemRow, SensorTables, table_rows
from servo.projections.sensor_tables import (
    SENSOR_ARCHIVED_EVALUATIONS,
    SENSOR_ARCHIVED_INBOX,
    SENSOR_STORED_TABLES,
    SENSOR_TABLES,
)
from servo.services import _compaction_ledger as ledger
from servo.services._folded_projection import FoldedProjection
from servo.services.context import ServiceContext


def _from_rows(rows: Mapping[str, list[Any]]) -> SensorTables:
    return SensorTables.from_rows(*(rows[t.name] for t in SENSOR_STORED_TABLES))


# The cut moves by quarter hours: a checkpoint's boundary then changes (and its projection is published
# for it alone) at most four times an hour, not at every sweep.
CUT_STEP_MS = 900_000


def _step(ms: int) -> str:
    return ledger.ulid_floor(ms - ms % CUT_STEP_MS)


def retention_boundary(now_ms: int) -> str:
    """The event id before which sensor events are folded into checkpoints at ``now_ms`` (an hour,
    and up to a quarter more): the events a publish re-folds are bounded by it, not by the retention."""
    return _step(now_ms - SETTLE_MS)


def expiry_boundary(now_ms: int) -> str:
    """The event id before which the finished rows let go by the checkpoints expire (§5: 30 days)."""
    return _step(now_ms - RETENTION_MS)


def cut_sensors(tables: SensorTables, now_ms: int) -> SensorTables:
    """``tables`` with the history settled at ``now_ms`` checkpointed and the rows past 30 days gone."""
    return tables.with_checkpoints(retention_boundary(now_ms), expiry_boundary(now_ms))


def _fold(state: SensorTables, events: list[Event], now_ms: int) -> SensorTables:
    # History past the settle goes as the projection is rewritten anyway (no write of its own).
    return cut_sensors(state.with_events(events), now_ms)


def _stored_rows(tables: SensorTables) -> Mapping[str, list[Any]]:
    return table_rows(tables, finished=False)


# The finished rows only come (as a cut lets history go) and go (past 30 days, oldest first): delta
# files, so a publish writes the rows it let go, not the retention's.
PROJECTION = FoldedProjection(
    "sensors",
    SENSOR_TABLES,
    _from_rows,
    _stored_rows,
    _fold,
    lambda s: not s.events,
    frozenset({SENSOR_ARCHIVED_EVALUATIONS.name, SENSOR_ARCHIVED_INBOX.name}),
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
    let the history past the retention go, and publish (also when only the clock moved;
    ``publish=False``: only read them so).

    Raises:
        Conflict: lost the head's CAS race too many times in a row.
    """
    items = list(run_items)
    now_ms = ctx.clock_ms()

    def settle(tables: SensorTables) -> SensorTables:
        # After the run items, as a rebuild does: the cut reads the items it may let go.
        return cut_sensors(tables.with_run_items(items), now_ms)

    return PROJECTION.refresh(
        ctx, tenant_id, workspace_id, hint, lookback_ms=lookback_ms, settle=settle, publish=publish
    )


def rebuild_sensors(
    events: Iterable[Event], run_items: Iterable[SensorRunItemRow] = (), now_ms: int | None = None
) -> SensorTables:
    """The tables from a whole ledger's events and the run items (what a live projection must equal);
    with ``now_ms``, without the history a live projection refreshed then has let go."""
    tables = SensorTables().with_events(events).with_run_items(run_items)
    return tables if now_ms is None else cut_sensors(tables, now_ms)
