"""The asset catalog's publish cost against how many partitions exist (issue 20 item 6).

A catalog is seeded with N partition rows of one daily asset (one base file, as a long history leaves
it after merges), then ``PUBLISHES`` refreshes each fold one new TaskFinished of that asset (a new
partition) on a warm instance and publish. The CPU time and bytes per publish at N = 100,000 and at
N = 100 should be alike: a publish writes the changed rows, the assets row file and the head.

    PYTHONPATH=shared python -c "from bench import catalog; print(catalog.run())"
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from servo.core.asset_catalog import fold_catalog
from servo.core.canonical_json import canonical_bytes
from servo.core.events import TaskFinished, encode_event, ledger_object_name, make_event
from servo.core.ids import UlidFactory
from servo.core.partition_status import AttemptCompletion
from servo.services import asset_projection as catalog
from servo.services.context import ServiceContext
from servo.settings import Settings
from servo.store import LocalFileStore
from servo.store.counting import CountingStore

TENANT, WS = "default", "bench"
ASSET = "bench.daily"
PUBLISHES = 40
SIZES = (100, 100_000)
T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)


def _pk(i: int) -> str:
    return f"date=d:{(date(1800, 1, 1) + timedelta(days=i)).isoformat()}"


def _seed(ctx: ServiceContext, n: int) -> None:
    """N materialized partitions in one file, published as a head whose watermark is T0."""
    completions = [
        AttemptCompletion(f"{i:026d}", T0, ASSET, _pk(i), f"r{i}", ASSET, 1, "succeeded", "f1", f"m{i}")
        for i in range(n)
    ]
    changed, assets = fold_catalog(lambda _k: None, {}, completions)
    store = ctx.workspace_store(TENANT, WS)
    head = catalog._Head(0, "", frozenset(), None, {})
    view = catalog.AssetCatalog(ctx, store, head)
    assets_file, files = catalog._publish(view, store, head, changed, assets)
    watermark = UlidFactory(lambda k: bytes(k)).new(T0)
    seeded = replace(head, watermark=watermark, assets_file=assets_file, files=files)
    store.create(catalog.HEAD, canonical_bytes(seeded.body()))


def _publishes(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        now = [T0 + 1000]
        settings = replace(Settings(), storage="local", data_dir=root)
        ctx = ServiceContext(
            settings, LocalFileStore(root / settings.bucket), lambda: now[0], UlidFactory(os.urandom)
        )
        _seed(ctx, n)
        counting = CountingStore(ctx.store)
        warm = replace(ctx, store=counting)
        ids = UlidFactory(os.urandom)
        cpu = 0.0
        for i in range(PUBLISHES + 1):  # the first publish decodes the history: the instance is cold
            if i == 1:
                counting.reset()
                cpu = 0.0
            now[0] += 1000
            data = TaskFinished(f"new{i}", ASSET, 1, "a1", "w", "succeeded", asset_key=ASSET,
                                partition_key=_pk(n + i), code_version="f1")  # fmt: skip
            event = make_event(data, event_id=ids.new(now[0]), timestamp_ms=now[0], tenant_id=TENANT,
                               workspace_id=WS)  # fmt: skip
            name = ledger_object_name(event.event_id)
            ctx.workspace_store(TENANT, WS).create(name, encode_event(event))
            start = time.process_time()
            view = catalog.refresh_asset_catalog(warm, TENANT, WS, [name])
            cpu += time.process_time() - start
        counts = counting.snapshot()
        assert view.assets[ASSET].materialized == n + PUBLISHES + 1
        return {
            "cpu_ms": round(cpu * 1000 / PUBLISHES, 2),
            "bytes_written": round(counts.bytes_written / PUBLISHES),
            "bytes_read": round(counts.bytes_read / PUBLISHES),
            "writes": round(counts.writes / PUBLISHES, 1),
        }


def run() -> dict[str, Any]:
    results: dict[str, Any] = {}
    for n in SIZES:
        for key, value in _publishes(n).items():
            results[f"catalog.publish_{n}_rows_{key}"] = value
    small, big = (results[f"catalog.publish_{n}_rows_cpu_ms"] for n in SIZES)
    results["catalog.publish_cpu_ratio_100k_over_100"] = round(big / small, 2) if small else None
    return results
