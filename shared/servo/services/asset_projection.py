"""The asset catalog projection: attempt completions of the ledger folded into ``partition_status`` and
``assets`` (automation §5, §6.5), published so a publish costs what changed, not how many partitions
exist.

Layout under the workspace::

    automation/assets/_head.json                   watermark, recent ids, the assets file, and per
                                                   asset its partition files (oldest first)
    automation/assets/assets/{hex12}.parquet       every asset's row (one per asset: small)
    automation/assets/partitions/{hex32}.parquet   immutable, content-named partition_status rows

A publish writes one new file per asset it touched holding only the changed rows; a later file's row
wins over an earlier one's. The new file first absorbs the newest files no bigger than it (a binary
counter, ``_delta_files``), so an asset keeps about log2(its partitions) files and a row is rewritten
about that many times over its life: 100,000 materialized partitions and 100 publish a one-row change
alike. Readers and the fold look rows up file by file, newest first, in files decoded once per instance.

The ledger is read as the schedule projection reads it (from a watermark, with a look-back window and
the ids applied inside it; without a head, from the beginning), every file is written create-if-absent
under its content's name, and the head moves by a generation CAS, so a crash or a lost race between
any two writes leaves orphans only and the next refresh folds the same events again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from servo.core.asset_catalog import AssetRow, PartitionKey, completions_of, fold_catalog
from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import Conflict, PreconditionFailed
from servo.core.events import Event
from servo.core.partition_status import PartitionStatusRow
from servo.projections.asset_tables import (
    ASSETS,
    PARTITION_STATUS,
    from_asset_record,
    from_record,
    to_asset_record,
    to_record,
)
from servo.projections.codec import content_hex12, decode_table, encode_table
from servo.services import _compaction_ledger as ledger
from servo.services._delta_files import DeltaFile, add_delta
from servo.services.context import ServiceContext
from servo.store import ObjectStore, create_once

__all__ = [
    "AssetCatalog",
    "has_asset_catalog",
    "load_asset_catalog",
    "rebuild_asset_catalog",
    "refresh_asset_catalog",
]

ROOT = "automation/assets"
HEAD = f"{ROOT}/_head.json"
_CAS_RETRIES = 20
_CACHE = "asset_catalog_files"
# Decoded files kept per instance; past this many the memory starts over (merged-away files linger).
_CACHE_FILES = 4096


@dataclass(frozen=True, slots=True)
class _Head:
    generation: int
    watermark: str
    recent: frozenset[str]
    assets_file: str | None
    files: dict[str, tuple[DeltaFile, ...]]  # asset key -> its partition files, oldest first

    def body(self) -> dict[str, Any]:
        return {
            "watermark": self.watermark,
            "recent": sorted(self.recent),
            "assetsFile": self.assets_file,
            "partitions": {k: [f.body() for f in v] for k, v in sorted(self.files.items())},
        }


def _load_head(store: ObjectStore) -> _Head:
    obj = store.get(HEAD)
    if obj is None:
        return _Head(0, "", frozenset(), None, {})
    raw = loads_strict(obj.data)
    files = {k: tuple(DeltaFile.from_body(f) for f in v) for k, v in raw["partitions"].items()}
    return _Head(obj.generation, raw["watermark"], frozenset(raw["recent"]), raw["assetsFile"], files)


class AssetCatalog:
    """The published catalog: every asset's row, and its partition rows read on demand."""

    def __init__(self, ctx: ServiceContext, store: ObjectStore, head: _Head) -> None:
        self._ctx, self._store, self._head = ctx, store, head
        self.assets: dict[str, AssetRow] = {}
        if head.assets_file is not None:
            self.assets = {r.asset_key: from_asset_record(r) for r in self._decoded(head.assets_file, ASSETS)}

    def _decoded(self, path: str, table: Any) -> list[Any]:
        cache: dict[str, list[Any]] = self._ctx.instance_state(_CACHE, dict)
        rows = cache.get(path)  # files are immutable: decoded once per instance
        if rows is None:
            if len(cache) >= _CACHE_FILES:
                cache.clear()
            obj = self._store.get(path)
            if obj is None:
                raise Conflict(f"asset catalog file {path} is missing")
            rows = cache[path] = decode_table(table, obj.data)
        return rows

    def _by_key(self, path: str) -> dict[str, PartitionStatusRow]:
        cache: dict[str, dict[str, PartitionStatusRow]] = self._ctx.instance_state(_CACHE + ":rows", dict)
        rows = cache.get(path)
        if rows is None:
            if len(cache) >= _CACHE_FILES:
                cache.clear()
            rows = cache[path] = {
                r.partition_key: from_record(r) for r in self._decoded(path, PARTITION_STATUS)
            }
        return rows

    def lookup(self, key: PartitionKey) -> PartitionStatusRow | None:
        """One (asset, partition) row: the newest file holding it wins."""
        for f in reversed(self._head.files.get(key[0], ())):
            row = self._by_key(f.path).get(key[1])
            if row is not None:
                return row
        return None

    def partitions(self, asset_key: str) -> dict[str, PartitionStatusRow]:
        """Every partition row of one asset, by partition key."""
        merged: dict[str, PartitionStatusRow] = {}
        for f in self._head.files.get(asset_key, ()):
            merged.update(self._by_key(f.path))
        return merged

    def all_partitions(self) -> Iterator[PartitionStatusRow]:
        for asset_key in sorted(self._head.files):
            yield from self.partitions(asset_key).values()


def has_asset_catalog(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> bool:
    """Whether the catalog was ever published in this workspace (one read: its head)."""
    return ctx.workspace_store(tenant_id, workspace_id).get(HEAD) is not None


def load_asset_catalog(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> AssetCatalog:
    """The published catalog, as is (possibly behind the ledger by what no refresh folded yet)."""
    store = ctx.workspace_store(tenant_id, workspace_id)
    return AssetCatalog(ctx, store, _load_head(store))


def _write(store: ObjectStore, data: bytes, path: str) -> str:
    create_once(store, path, data)
    return path


def _partition_file(store: ObjectStore, rows: list[PartitionStatusRow]) -> DeltaFile:
    data = encode_table(PARTITION_STATUS, [to_record(r) for r in sorted(rows, key=lambda r: r.partition_key)])
    path = f"{ROOT}/partitions/{hashlib.sha256(data).hexdigest()[:32]}.parquet"
    return DeltaFile(_write(store, data, path), len(rows))


def _publish(
    catalog: AssetCatalog,
    store: ObjectStore,
    head: _Head,
    changed: dict[PartitionKey, PartitionStatusRow],
    assets: dict[str, AssetRow],
) -> tuple[str | None, dict[str, tuple[DeltaFile, ...]]]:
    files = dict(head.files)
    by_asset: dict[str, dict[str, PartitionStatusRow]] = {}
    for (asset_key, partition_key), row in changed.items():
        by_asset.setdefault(asset_key, {})[partition_key] = row
    for asset_key in sorted(by_asset):
        files[asset_key] = add_delta(
            files.get(asset_key, ()),
            by_asset[asset_key],
            lambda f: catalog._by_key(f.path),
            lambda rows: _partition_file(store, rows),
        )
    assets_file = head.assets_file
    if changed:
        data = encode_table(ASSETS, [to_asset_record(assets[k]) for k in sorted(assets)])
        assets_file = _write(store, data, f"{ROOT}/assets/{content_hex12(data)}.parquet")
    return assets_file, files


def refresh_asset_catalog(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    hint: Iterable[str] = (),
    *,
    lookback_ms: int = ledger.SWEEP_LOOKBACK_MS,
) -> AssetCatalog:
    """Fold the completions written since the last publish (and the ``hint`` names) and publish.

    Raises:
        Conflict: lost the head's CAS race too many times in a row.
    """
    store = ctx.workspace_store(tenant_id, workspace_id)
    written = ledger.written_events(ctx.workspace_cache(tenant_id, workspace_id))
    hint = list(hint)
    for _ in range(_CAS_RETRIES):
        head = _load_head(store)
        names, _bad = ledger.candidate_names(store, head.watermark, head.recent, hint, lookback_ms)
        found = ledger.read_events(store, names, tenant_id, workspace_id, written)
        catalog = AssetCatalog(ctx, store, head)
        if not found.seen_ids:
            return catalog
        changed, assets = fold_catalog(catalog.lookup, catalog.assets, completions_of(found.events))
        assets_file, files = _publish(catalog, store, head, changed, assets)
        watermark = ledger.advance(head.watermark, found.seen_ids, ctx.clock_ms())
        new_head = _Head(
            head.generation,
            watermark,
            frozenset(ledger.recent_ids(head.recent | found.seen_ids, watermark)),
            assets_file,
            files,
        )
        try:
            generation = store.put(
                HEAD, canonical_bytes(new_head.body()), if_generation_match=head.generation
            )
        except PreconditionFailed:
            continue  # another refresh published first: fold again on top of it
        return AssetCatalog(ctx, store, _Head(generation, *_fields(new_head)))
    raise Conflict("asset catalog lost the publish race; the next read will retry")


def _fields(head: _Head) -> tuple[Any, ...]:
    return head.watermark, head.recent, head.assets_file, head.files


def rebuild_asset_catalog(
    events: Iterable[Event],
) -> tuple[dict[PartitionKey, PartitionStatusRow], dict[str, AssetRow]]:
    """The tables from a whole ledger's events (what a live catalog must equal), by one fold."""
    ordered = sorted(events, key=lambda e: e.event_id)
    return fold_catalog(lambda _key: None, {}, completions_of(ordered))
