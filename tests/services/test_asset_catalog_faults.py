"""The asset catalog under faults (automation §6.8; H1, H3): a crash before or after any of its writes,
duplicated and reordered TaskFinished events, and concurrent refreshes all end where one clean fold of
the ledger ends."""

from __future__ import annotations

import contextlib
import json
import random
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from servo.core.asset_catalog import completions_of, fold_catalog
from servo.core.events import TaskFinished, encode_event, ledger_object_name, make_event
from servo.services.asset_projection import rebuild_asset_catalog, refresh_asset_catalog

from tests.services.catalog_support import WS, Stack, daily_asset, day, stack
from tests.support.faults import Crash, CrashAt, FaultPlan, FaultyStore, When

CATALOG_WRITES = r".*/automation/assets/.*"


def _history(tmp_path: Path) -> Stack:
    """Three partitions materialized, one of them then failed by a rerun: nothing refreshed yet."""
    s = stack(tmp_path)
    s.deploy(daily_asset("ns.daily", maxRetries=0))
    for d in ("2025-01-01", "2025-01-02", "2025-01-03"):
        s.trigger("ns.daily", partition=day(d))
        s.finish_next()
    s.trigger("ns.daily", partition=day("2025-01-02"))
    s.finish_next("FAILED")
    return s


def _published(s: Stack) -> tuple[dict, dict]:  # type: ignore[type-arg]
    catalog = refresh_asset_catalog(s.ctx, "default", WS)
    return {(r.asset_key, r.partition_key): r for r in catalog.all_partitions()}, catalog.assets


def _count_writes(tmp_path: Path) -> int:
    s = _history(tmp_path)
    faulty = FaultyStore(s.ctx.store)
    refresh_asset_catalog(replace(s.ctx, store=faulty), "default", WS)
    return sum(1 for w in faulty.writes if re.fullmatch(CATALOG_WRITES, w.name))


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_any_catalog_write_loses_nothing(tmp_path: Path, when: When) -> None:
    writes = _count_writes(tmp_path / "clean")
    assert writes >= 3  # the partition file, the assets file, the head
    for nth in range(1, writes + 1):
        s = _history(tmp_path / f"{when}-{nth}")
        faulty = FaultyStore(s.ctx.store)
        crashing = replace(s.ctx, store=faulty)
        faulty.set_plan(FaultPlan(crashes=(CrashAt(CATALOG_WRITES, nth, when),)))
        with contextlib.suppress(Crash):
            refresh_asset_catalog(crashing, "default", WS)
        faulty.set_plan(FaultPlan())
        rows, assets = _published(s)
        expected_rows, expected_assets = rebuild_asset_catalog(s.events())
        assert (rows, assets) == (expected_rows, expected_assets), (when, nth)
        assert assets["ns.daily"].materialized == 3 and assets["ns.daily"].failed == 1


def test_duplicated_and_reordered_completions_keep_the_status(tmp_path: Path) -> None:
    s = _history(tmp_path)
    expected = rebuild_asset_catalog(s.events())
    store = s.ctx.workspace_store("default", WS)
    # Every completion written again under a new id (a redelivered callback), in shuffled order.
    finished = [e for e in s.events() if isinstance(e.data, TaskFinished)]
    random.Random(7).shuffle(finished)
    for e in finished:
        s.clock.advance(10)
        again = make_event(e.data, event_id=s.ctx.ids.new(s.clock.now_ms), timestamp_ms=s.clock.now_ms,
                           tenant_id="default", workspace_id=WS)  # fmt: skip
        store.create(ledger_object_name(again.event_id), encode_event(again))
    assert _published(s) == expected
    # Originals and repeats folded in any order and batching give the same rows, a repeat folded in a
    # batch before its own original too (a repeat carries its attempt's dispatch time).
    originals = completions_of(s.events())
    assert all(c.dispatched_at_ms is not None for c in originals)
    for seed in range(5):
        random.Random(seed).shuffle(originals)
        rows: dict = {}  # type: ignore[type-arg]
        assets: dict = {}  # type: ignore[type-arg]
        for start in range(0, len(originals), 3):
            changed, assets = fold_catalog(rows.get, assets, originals[start : start + 3])
            rows |= changed
        assert (rows, assets) == expected, seed


def test_concurrent_refreshes_publish_the_same_catalog(tmp_path: Path) -> None:
    s = _history(tmp_path)
    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(refresh_asset_catalog, s.ctx, "default", WS) for _ in range(4)]:
            with contextlib.suppress(Exception):  # a lost head race is retried by the next read
                future.result()
    assert _published(s) == rebuild_asset_catalog(s.events())
    row = _published(s)[0][("ns.daily", day("2025-01-02"))]
    assert json.loads(row.last_materialization.execution_lineage_ref)["attempt"] == 1
