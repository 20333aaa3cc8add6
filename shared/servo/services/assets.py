"""The asset catalog as the API shows it (automation §4, §6.5, §6.6): the deployed assets with their
last materialization, partition summary and staleness, and one asset's partitions.

Reads refresh the catalog projection first, so a read sees every completion written before it. The
staleness of a partition is a pure function of the catalog, the deployed manifests (the current one,
and the older ones back to the materialized code's last deploy, for CODE_CHANGED's ``since``) and
``asOf`` (``servo.core.staleness``): the same ``asOf`` gives the same answer, after a rebuild too (T5).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from servo.core.errors import InvalidInput, NotFound
from servo.core.keys import AssetKey
from servo.core.partition_keys import partition_values
from servo.core.partition_status import (
    LastAttempt,
    LastMaterialization,
    PartitionStatusRow,
    partition_state,
    partition_summary,
)
from servo.core.staleness import Deploy, Staleness, Upstream, staleness
from servo.core.timefmt import format_timestamp, parse_timestamp
from servo.services.asset_projection import AssetCatalog, refresh_asset_catalog
from servo.services.context import ServiceContext
from servo.services.manifests import (
    AssetSpec,
    DeployedManifest,
    deployed_before,
    load_current_manifest,
    load_manifest,
)
from servo.services.runs import _decode_cursor as decode_cursor
from servo.services.runs import _encode_cursor as encode_cursor
from servo.services.runs import page_limit

__all__ = ["PARTITION_STATUSES", "get_asset", "list_asset_partitions", "list_assets"]

PARTITION_STATUSES = ("NEVER_MATERIALIZED", "MATERIALIZED_BUT_LAST_ATTEMPT_FAILED", "STALE", "MATERIALIZED")
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
MAX_PREFIX = 256
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LIST_PARAMS = frozenset({"stale", "prefix", "asOf", "limit", "cursor"})
_SHOW_PARAMS = frozenset({"asOf"})
_PARTITION_PARAMS = frozenset({"status", "stale", "asOf", "limit", "cursor"})


def _check_params(query: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown query parameter {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})",
            details={"field": unknown[0]},
        )


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))"
)


def _as_of(ctx: ServiceContext, query: Mapping[str, str]) -> int:
    """``asOf`` in epoch ms: any RFC 3339 date-time (an offset, a leap second read as :59)."""
    raw = query.get("asOf")
    if raw is None:
        return ctx.clock_ms()
    found = _RFC3339.fullmatch(raw)
    try:
        if found is None:
            raise ValueError(raw)
        y, mo, d, h, mi, sec, frac, sign, oh, om = found.groups()
        offset = timedelta(hours=int(oh or 0), minutes=int(om or 0)) * (-1 if sign == "-" else 1)
        at = datetime(int(y), int(mo), int(d), int(h), int(mi), min(int(sec), 59), tzinfo=timezone(offset))
    except ValueError:
        raise InvalidInput(
            f"asOf must be an RFC 3339 time like 2025-01-15T08:00:00Z, not {raw!r}", details={"field": "asOf"}
        ) from None
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    return micros // 1000 + int((frac or "0")[:3].ljust(3, "0"))


def _stale_filter(query: Mapping[str, str]) -> bool | None:
    raw = query.get("stale")
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise InvalidInput(f"stale must be true or false, not {raw!r}", details={"field": "stale"})
    return raw == "true"


def _page(query: Mapping[str, str]) -> tuple[int, str | None]:
    try:
        limit = page_limit(query, DEFAULT_LIMIT, MAX_LIMIT)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, details={"field": "limit"}) from None
    if not query.get("cursor"):
        return limit, None
    try:
        return limit, decode_cursor(query["cursor"])[1]
    except InvalidInput:
        raise InvalidInput("cursor is not valid", details={"field": "cursor"}) from None


class _Replay:
    """An iterator's items, read from it as far as anyone asked and replayed to every later reader."""

    def __init__(self, source: Iterator[Deploy]) -> None:
        self._source, self._read = source, list[Deploy]()

    def __iter__(self) -> Iterator[Deploy]:
        i = 0
        while True:
            if i == len(self._read):
                item = next(self._source, None)
                if item is None:
                    return
                self._read.append(item)
            yield self._read[i]
            i += 1


class _View:
    """One read of the catalog against the current manifest at ``as_of_ms``."""

    def __init__(
        self,
        ctx: ServiceContext,
        scope: tuple[str, str],
        catalog: AssetCatalog,
        manifest: DeployedManifest | None,
        as_of_ms: int,
    ) -> None:
        self.ctx, self.scope = ctx, scope
        self.catalog, self.manifest, self.as_of_ms = catalog, manifest, as_of_ms
        self.specs: Mapping[str, AssetSpec] = manifest.assets if manifest is not None else {}
        self._older: list[str] | None = None
        self._deploys: dict[str, _Replay] = {}

    def _manifests(self) -> Iterator[DeployedManifest]:
        """The current manifest, then the older ones newest first, each loaded when reached."""
        if self.manifest is None:
            return
        yield self.manifest
        if self._older is None:
            self._older = deployed_before(self.ctx, *self.scope, self.manifest.manifest_id)
        for manifest_id in self._older:
            yield load_manifest(self.ctx, *self.scope, manifest_id)

    def deploys(self, asset_key: str) -> _Replay:
        """The asset's code version deploy by deploy, newest first (read only as far as a CODE_CHANGED
        needs, once per view)."""
        found = self._deploys.get(asset_key)
        if found is None:
            history = (
                (parse_timestamp(m.deployed_at), spec.code_version if spec is not None else None)
                for m in self._manifests()
                for spec in (m.assets.get(asset_key),)
            )
            found = self._deploys[asset_key] = _Replay(history)
        return found

    def spec(self, asset_key: str) -> AssetSpec:
        try:
            key = str(AssetKey.parse(asset_key))
        except InvalidInput:
            key = asset_key
        spec = self.specs.get(key)
        if spec is None:
            raise NotFound(f"asset '{asset_key}' is not deployed", details={"assetKey": asset_key})
        return spec

    def _upstream_at(self, spec: AssetSpec, upstream: str, partition_key: str) -> int | None:
        up = self.specs.get(upstream)
        if up is not None and bool(up.dimensions) == bool(spec.dimensions):
            # Deploys refuse an edge between unlike partitionings, so both alike means the same key.
            row = self.catalog.lookup((upstream, partition_key))
            mat = row.last_materialization if row is not None else None
        elif up is not None and not up.dimensions:
            row = self.catalog.lookup((upstream, ""))
            mat = row.last_materialization if row is not None else None
        else:  # this asset is unpartitioned, the upstream is: its newest materialization of any
            asset = self.catalog.assets.get(upstream)
            mat = asset.last_materialization[1] if asset and asset.last_materialization else None
        return mat.at_ms if mat is not None else None

    def staleness(self, spec: AssetSpec, partition_key: str, row: PartitionStatusRow | None) -> Staleness:
        mat = row.last_materialization if row is not None else None
        return staleness(
            materialized_at_ms=mat.at_ms if mat is not None else None,
            materialized_code_version=mat.code_version if mat is not None else None,
            code_version=spec.code_version,
            code_deploys=self.deploys(spec.key),
            upstreams=[Upstream(u, self._upstream_at(spec, u, partition_key)) for u in spec.upstream],
            partitioned=bool(spec.dimensions),
            freshness_minutes=spec.freshness_minutes,
            as_of_ms=self.as_of_ms,
        )

    def asset_json(self, spec: AssetSpec) -> dict[str, Any]:
        rows = self.catalog.partitions(spec.key)
        stale_keys = frozenset(k for k, r in rows.items() if self.staleness(spec, k, r).stale)
        asset = self.catalog.assets.get(spec.key)
        lm = asset.last_materialization if asset is not None else None
        la = asset.last_attempt if asset is not None else None
        # The asset's own staleness is its newest materialized partition's (its only one if unpartitioned).
        shown_key = lm[0] if lm is not None else ""
        out: dict[str, Any] = {
            "assetKey": spec.key,
            "dependencies": list(spec.upstream),
            "partitioned": bool(spec.dimensions),
            "partitions": _drop_none(
                partition_summary(spec.dimensions, rows.values(), stale_keys, now_ms=self.as_of_ms)
            ),
            "staleness": _staleness_json(self.staleness(spec, shown_key, rows.get(shown_key))),
        }
        if spec.code_version is not None:
            out["codeVersion"] = spec.code_version
        if lm is not None:
            out["lastMaterialization"] = _materialization_json(lm[1], lm[0], brief=True)
        if la is not None:
            out["lastAttempt"] = _attempt_json(la[1], la[0])
        return out

    def partition_json(self, spec: AssetSpec, row: PartitionStatusRow) -> dict[str, Any]:
        stale = self.staleness(spec, row.partition_key, row)
        out: dict[str, Any] = {
            "partitionKey": row.partition_key,
            "status": partition_state(row, stale=stale.stale),
            "staleness": _staleness_json(stale),
        }
        values = partition_values(row.partition_key)
        if values is not None:
            out["partition"] = values
        if row.last_materialization is not None:
            out["lastMaterialization"] = _materialization_json(row.last_materialization, None, brief=False)
        if row.last_attempt is not None:
            out["lastAttempt"] = _attempt_json(row.last_attempt, None)
        return out


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _staleness_json(s: Staleness) -> dict[str, Any]:
    return _drop_none(
        {
            "stale": s.stale,
            "reason": s.reason,
            "since": format_timestamp(s.since_ms) if s.since_ms is not None else None,
            "upstream": s.upstream,
        }
    )


def _materialization_json(
    m: LastMaterialization, partition_key: str | None, *, brief: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runId": m.run_id,
        "taskKey": m.task_key,
        "attempt": m.attempt,
        "at": format_timestamp(m.at_ms),
        "partitionKey": partition_key or None,
        "codeVersion": m.code_version,
        "executionLineageRef": m.execution_lineage_ref,
    }
    if not brief:
        out |= {
            "materializationId": m.materialization_id,
            "rowCount": m.row_count,
            "outputPath": m.output_path,
            "deltaTable": m.delta_table,
            "deltaVersion": m.delta_version,
            "deltaPartition": m.delta_partition,
        }
    return _drop_none(out)


def _attempt_json(a: LastAttempt, partition_key: str | None) -> dict[str, Any]:
    return _drop_none(
        {
            "runId": a.run_id,
            "taskKey": a.task_key,
            "attempt": a.attempt,
            "at": format_timestamp(a.at_ms),
            "outcome": a.outcome,
            "partitionKey": partition_key or None,
        }
    )


def _view(ctx: ServiceContext, tenant_id: str, workspace_id: str, as_of_ms: int) -> _View:
    catalog = refresh_asset_catalog(ctx, tenant_id, workspace_id)
    manifest = load_current_manifest(ctx, tenant_id, workspace_id)
    return _View(ctx, (tenant_id, workspace_id), catalog, manifest, as_of_ms)


def list_assets(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """The deployed assets by key (``?prefix`` a namespace or key prefix, ``?stale`` filtered), paged."""
    _check_params(query, _LIST_PARAMS)
    stale = _stale_filter(query)
    limit, after = _page(query)
    prefix = query.get("prefix", "")
    if len(prefix) > MAX_PREFIX:
        raise InvalidInput(f"prefix is at most {MAX_PREFIX} characters", details={"field": "prefix"})
    view = _view(ctx, tenant_id, workspace_id, _as_of(ctx, query))
    shown: list[dict[str, Any]] = []
    next_cursor = None
    for key in sorted(view.specs, key=lambda k: k.encode()):
        if not key.startswith(prefix) or (after is not None and key.encode() <= after.encode()):
            continue
        body = view.asset_json(view.specs[key])
        if stale is not None and body["staleness"]["stale"] != stale:
            continue
        if len(shown) == limit:
            next_cursor = encode_cursor(0, shown[-1]["assetKey"])
            break
        shown.append(body)
    out: dict[str, Any] = {"assets": shown}
    if next_cursor is not None:
        out["nextCursor"] = next_cursor
    return out


def get_asset(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, asset_key: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """One deployed asset. Raises NotFound when no deployed asset has that key."""
    _check_params(query, _SHOW_PARAMS)
    view = _view(ctx, tenant_id, workspace_id, _as_of(ctx, query))
    return view.asset_json(view.spec(asset_key))


def list_asset_partitions(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, asset_key: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """The recorded partitions of one asset by key (``?status``, ``?stale`` filtered), paged.

    Partitions never attempted have no row and are counted as ``missing`` in the asset's summary.
    """
    _check_params(query, _PARTITION_PARAMS)
    status = query.get("status")
    if status is not None and status not in PARTITION_STATUSES:
        raise InvalidInput(
            f"status must be one of {', '.join(PARTITION_STATUSES)}, not {status!r}",
            details={"field": "status"},
        )
    stale = _stale_filter(query)
    limit, after = _page(query)
    view = _view(ctx, tenant_id, workspace_id, _as_of(ctx, query))
    spec = view.spec(asset_key)
    rows = view.catalog.partitions(spec.key)
    shown: list[dict[str, Any]] = []
    next_cursor = None
    for key in sorted(rows, key=lambda k: k.encode()):
        if after is not None and key.encode() <= after.encode():
            continue
        body = view.partition_json(spec, rows[key])
        if (status is not None and body["status"] != status) or (
            stale is not None and body["staleness"]["stale"] != stale
        ):
            continue
        if len(shown) == limit:
            next_cursor = encode_cursor(0, shown[-1]["partitionKey"])
            break
        shown.append(body)
    out: dict[str, Any] = {"assetKey": spec.key, "partitions": shown}
    if next_cursor is not None:
        out["nextCursor"] = next_cursor
    return out
