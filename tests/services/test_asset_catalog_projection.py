"""The published asset catalog: partition_status and assets from real runs, equal to a rebuild from the
ledger (H1), a failed retry never erasing a success (L2), and a publish writing only what changed."""

from __future__ import annotations

from pathlib import Path

from servo.core.asset_catalog import summarize
from servo.services.asset_projection import (
    load_asset_catalog,
    rebuild_asset_catalog,
    refresh_asset_catalog,
)

from tests.services.catalog_support import WS, daily_asset, day, plain_asset, stack


def test_runs_of_partitions_become_rows_equal_to_a_rebuild(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(daily_asset("ns.daily"), plain_asset("ns.plain"))
    for d in ("2025-01-01", "2025-01-02", "2025-01-03"):
        s.trigger("ns.daily", partition=day(d))
        s.finish_next()
        refresh_asset_catalog(s.ctx, "default", WS)  # one publish per run: files accumulate
    s.trigger("ns.plain")
    s.finish_next()
    live = refresh_asset_catalog(s.ctx, "default", WS)
    rows = {(r.asset_key, r.partition_key): r for r in live.all_partitions()}
    assert sorted(rows) == [
        ("ns.daily", day("2025-01-01")),
        ("ns.daily", day("2025-01-02")),
        ("ns.daily", day("2025-01-03")),
        ("ns.plain", ""),
    ]
    assert live.assets["ns.daily"].materialized == 3
    expected_rows, expected_assets = rebuild_asset_catalog(s.events())
    assert rows == expected_rows
    assert load_asset_catalog(s.ctx, "default", WS).assets == expected_assets == summarize(rows.values())
    mat = rows[("ns.daily", day("2025-01-02"))].last_materialization
    assert mat is not None and mat.code_version == "f1" and mat.row_count == 3


def test_l2_a_failed_rerun_keeps_the_materialization(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(daily_asset("ns.daily", maxRetries=0))
    first = s.trigger("ns.daily", partition=day("2025-01-05"))
    s.finish_next()
    refresh_asset_catalog(s.ctx, "default", WS)
    second = s.trigger("ns.daily", partition=day("2025-01-05"))
    assert second != first
    s.finish_next("FAILED")
    catalog = refresh_asset_catalog(s.ctx, "default", WS)
    row = catalog.lookup(("ns.daily", day("2025-01-05")))
    assert row is not None and row.last_materialization is not None and row.last_attempt is not None
    assert (row.last_materialization.run_id, row.last_attempt.run_id) == (first, second)
    assert row.last_attempt.outcome == "FAILED"
    assert (catalog.assets["ns.daily"].materialized, catalog.assets["ns.daily"].failed) == (1, 1)


def test_a_publish_writes_one_small_file_per_touched_asset(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(daily_asset("ns.daily"), plain_asset("ns.plain"))
    for d in ("2025-01-01", "2025-01-02"):
        s.trigger("ns.daily", partition=day(d))
        s.finish_next()
    refresh_asset_catalog(s.ctx, "default", WS)
    store = s.ctx.workspace_store("default", WS)
    before = {m.name for m in store.list("automation/assets/partitions/")}
    s.trigger("ns.plain")
    s.finish_next()
    refresh_asset_catalog(s.ctx, "default", WS)
    written = {m.name for m in store.list("automation/assets/partitions/")} - before
    assert len(written) == 1  # ns.plain's row only: ns.daily's file is not rewritten


def test_a_refresh_with_nothing_new_publishes_nothing(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(plain_asset("ns.plain"))
    s.trigger("ns.plain")
    s.finish_next()
    refresh_asset_catalog(s.ctx, "default", WS)
    store = s.ctx.workspace_store("default", WS)
    head = store.get("automation/assets/_head.json")
    assert head is not None
    refresh_asset_catalog(s.ctx, "default", WS)
    again = store.get("automation/assets/_head.json")
    assert again is not None and again.generation == head.generation


def test_the_sweep_keeps_a_read_catalog_current_and_leaves_an_unread_one_alone(tmp_path: Path) -> None:
    from servo.core.controller import ControllerConfig
    from servo.services.asset_projection import has_asset_catalog
    from servo.services.timers import sweep_workspace

    s = stack(tmp_path)
    s.deploy(plain_asset("ns.plain"))
    s.trigger("ns.plain")
    s.finish_next()
    sweep_workspace(s.ctx, "default", WS, ControllerConfig())
    assert not has_asset_catalog(s.ctx, "default", WS)  # nobody asked: nothing written
    refresh_asset_catalog(s.ctx, "default", WS)
    second = s.trigger("ns.plain")
    s.finish_next()
    sweep_workspace(s.ctx, "default", WS, ControllerConfig())
    row = load_asset_catalog(s.ctx, "default", WS).lookup(("ns.plain", ""))  # no refresh: the sweep's
    assert row is not None and row.last_materialization is not None
    assert row.last_materialization.run_id == second
