"""Deploy: validate and store asset-graph manifests (user-surface §2, design §2 and §6).

Layout under the workspace: ``manifests/{manifestId}.json`` (immutable, create-if-absent),
``manifests/_index.json`` (the current pointer, swapped by generation CAS) and
``manifests/idempotency/{b64u(key)}.json`` (the first response to an ``Idempotency-Key``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from servo.core.keys import AssetKey, b64u_encode
from servo.core.partition_compat import partition_mismatch
from servo.core.planner import AssetGraph, find_cycle
from servo.core.timefmt import format_timestamp
from servo.services import schedule_deploy
from servo.services.context import ServiceContext
from servo.store import create_once

INDEX = "manifests/_index.json"
MAX_IDEMPOTENCY_KEY_BYTES = 256
_CAS_RETRIES = 20


@dataclass(frozen=True, slots=True)
class AssetSpec:
    """What the control plane needs of one deployed asset."""

    key: str
    upstream: tuple[str, ...]
    max_retries: int
    timeout_seconds: int | None
    dimensions: tuple[Mapping[str, Any], ...]  # partitioning dimensions as deployed
    # The asset's transformFingerprint (absent from older manifests) and its freshness policy
    # (automation §6.6; None = the default 1440 minutes, 0 = off).
    code_version: str | None = None
    freshness_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class DeployedManifest:
    manifest_id: str
    code_version_id: str
    assets: Mapping[str, AssetSpec]
    deployed_at: str
    body: Mapping[str, Any]

    def graph(self) -> AssetGraph:
        return AssetGraph.from_edges({k: a.upstream for k, a in self.assets.items()})


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise InvalidInput(message)


def _asset_key(raw: Any, where: str) -> str:
    if isinstance(raw, str):
        return str(AssetKey.parse(raw))
    _require(isinstance(raw, Mapping), f"{where}: key must be an object {{namespace, name}} or a string")
    ns, name = raw.get("namespace"), raw.get("name")
    _require(isinstance(ns, str) and isinstance(name, str), f"{where}: key needs string namespace and name")
    return str(AssetKey.parse(f"{ns}.{name}"))


def _int_field(
    obj: Mapping[str, Any], name: str, default: int | None, lo: int, hi: int, where: str
) -> int | None:
    value = obj.get(name, default)
    if value is None:
        return None
    _require(
        isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi,
        f"{where}: {name} must be an integer in {lo}..{hi}",
    )
    return int(value)


def _code_version(raw: Mapping[str, Any]) -> str | None:
    # The fingerprint is stored as given (the API never validated it); only a non-empty string
    # can name the code a materialization was made with.
    value = raw.get("transformFingerprint")
    return value if isinstance(value, str) and value else None


def parse_assets(body: Mapping[str, Any]) -> dict[str, AssetSpec]:
    """Validate a manifest body: keys, unique, deps resolve, no cycles. Raises InvalidInput."""
    assets = body.get("assets")
    _require(isinstance(assets, list) and len(assets) > 0, "manifest must contain at least one asset")
    specs: dict[str, AssetSpec] = {}
    assert isinstance(assets, list)
    for i, raw in enumerate(assets):
        where = f"assets[{i}]"
        _require(isinstance(raw, Mapping), f"{where} must be an object")
        key = _asset_key(raw.get("key"), where)
        _require(key not in specs, f"duplicate asset key {key}")
        _require(
            isinstance(raw.get("id", ""), str) and raw.get("id", "x") != "", f"{where}: id must be non-empty"
        )
        deps = raw.get("dependencies", [])
        _require(isinstance(deps, list), f"{where}: dependencies must be a list")
        upstream = []
        for j, dep in enumerate(deps):
            _require(isinstance(dep, Mapping), f"{where}.dependencies[{j}] must be an object")
            upstream.append(_asset_key(dep.get("upstreamKey"), f"{where}.dependencies[{j}]"))
        execution = raw.get("execution", {}) or {}
        _require(isinstance(execution, Mapping), f"{where}: execution must be an object")
        partitioning = raw.get("partitioning", {}) or {}
        _require(isinstance(partitioning, Mapping), f"{where}: partitioning must be an object")
        dims = partitioning.get("dimensions", []) or []
        _require(isinstance(dims, list), f"{where}: partitioning.dimensions must be a list")
        for d in dims:
            _require(
                isinstance(d, Mapping)
                and isinstance(d.get("name"), str)
                and d.get("kind") in ("time", "static"),
                f"{where}: each partition dimension needs a name and kind time|static",
            )
        specs[key] = AssetSpec(
            key=key,
            upstream=tuple(sorted(set(upstream))),
            max_retries=_int_field(execution, "maxRetries", 2, 0, 100, where) or 0,
            timeout_seconds=_int_field(execution, "timeoutSeconds", None, 1, 7 * 24 * 3600, where),
            dimensions=tuple(dims),
            code_version=_code_version(raw),
            freshness_minutes=_int_field(raw, "freshnessMinutes", None, 0, 5_270_400, where),
        )
    unknown = sorted({u for s in specs.values() for u in s.upstream if u not in specs})
    _require(not unknown, f"dependencies on unknown assets: {', '.join(unknown)}")
    mismatches = [
        partition_mismatch(key, spec.dimensions, upstream, specs[upstream].dimensions)
        for key, spec in sorted(specs.items())
        for upstream in spec.upstream
    ]
    _require(not any(mismatches), "; ".join(m for m in mismatches if m))
    cycle = find_cycle(AssetGraph.from_edges({k: s.upstream for k, s in specs.items()}))
    _require(cycle is None, f"dependency cycle: {' -> '.join(cycle or [])}")
    return specs


def _fingerprint(body: Mapping[str, Any]) -> str:
    preimage = {
        "manifestVersion": body.get("manifestVersion"),
        "codeVersionId": body.get("codeVersionId"),
        "git": body.get("git"),
        "assets": sorted(body.get("assets", []), key=lambda a: canonical_bytes(a.get("key"))),
        "schedules": body.get("schedules", []),
        "metadata": body.get("metadata", {}),
    }
    if body.get("sensors"):
        preimage["sensors"] = body["sensors"]  # only when present: older fingerprints stay as they were
    return "sha256:" + hashlib.sha256(canonical_bytes(preimage)).hexdigest()


def deploy_manifest(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, raw_body: bytes, idempotency_key: str | None
) -> tuple[int, dict[str, Any]]:
    """POST manifests: 201 new, 200 idempotent replay, 400 invalid, 409 key reused with other content."""
    try:
        body = loads_strict(raw_body)
    except InvalidInput as exc:
        raise InvalidInput(f"manifest is not valid JSON: {exc.message}") from None
    _require(isinstance(body, Mapping), "manifest must be a JSON object")
    for name in ("manifestVersion", "codeVersionId"):
        _require(isinstance(body.get(name), str) and body[name] != "", f"{name} must be a non-empty string")
    specs = parse_assets(body)
    schedules = schedule_deploy.parse_manifest_schedules(body, specs)
    sensors = schedule_deploy.parse_manifest_sensors(body, specs)
    fingerprint = _fingerprint(body)
    store = ctx.workspace_store(tenant_id, workspace_id)
    idem_name = None
    if idempotency_key is not None:
        _require(
            0 < len(idempotency_key.encode()) <= MAX_IDEMPOTENCY_KEY_BYTES,
            f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY_BYTES} bytes",
        )
        idem_name = f"manifests/idempotency/{b64u_encode(idempotency_key.encode())}.json"
        previous = store.get(idem_name)
        if previous is not None:
            first = loads_strict(previous.data)
            return _replay(ctx, tenant_id, workspace_id, first, fingerprint, idempotency_key or "")

    from servo.services.timers import register_workspace

    # First of the writes: a deploy that dies after any later one is in a workspace the sweep visits.
    register_workspace(ctx, tenant_id, workspace_id)

    now = ctx.clock_ms()
    manifest_id = ctx.new_id()
    response = {
        "manifestId": manifest_id,
        "workspaceId": workspace_id,
        "codeVersionId": body["codeVersionId"],
        "fingerprint": fingerprint,
        "assetCount": len(specs),
        "deployedAt": format_timestamp(now),
    }
    stored = {"manifestId": manifest_id, "deployedAt": response["deployedAt"], "fingerprint": fingerprint}
    schedule_events = schedule_deploy.plan_schedule_events(
        ctx, tenant_id, workspace_id, manifest_id, schedules
    ) + schedule_deploy.plan_sensor_events(ctx, tenant_id, workspace_id, manifest_id, sensors)
    record = {**stored, "manifest": body, **schedule_deploy.schedule_record(schedule_events)}
    # create_once: a create whose response was lost is retried by the client library and meets itself.
    if not create_once(store, f"manifests/{manifest_id}.json", canonical_bytes(record)):
        raise Conflict(f"manifest {manifest_id} already exists with other content")
    if idem_name is not None:
        idem_record = canonical_bytes({"fingerprint": fingerprint, "response": response})
        if not create_once(store, idem_name, idem_record):
            # A concurrent deploy with the same key won; answer as it did (our manifest file is an orphan).
            existing = store.get(idem_name)
            assert existing is not None
            previous = loads_strict(existing.data)
            return _replay(ctx, tenant_id, workspace_id, previous, fingerprint, idempotency_key or "")
    _point_current(ctx, tenant_id, workspace_id, manifest_id)
    schedule_deploy.append_schedule_events(ctx, tenant_id, workspace_id, schedule_events)
    return 201, response


def _replay(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    previous: Mapping[str, Any],
    fingerprint: str,
    key: str,
) -> tuple[int, dict[str, Any]]:
    """The first answer to this Idempotency-Key, once what that deploy promised holds: the deploy may
    have died after its idempotency record and before moving the current pointer, and a replay that
    only answered would leave the pointer behind for ever. (The pointer never moves back to an older
    manifest, so replaying an old deploy changes nothing.)"""
    if previous.get("fingerprint") != fingerprint:
        raise Conflict(
            f"Idempotency-Key '{key}' was already used for a different manifest",
            details={"existingFingerprint": previous.get("fingerprint"), "requestedFingerprint": fingerprint},
        )
    from servo.services.timers import register_workspace

    # Idempotent; it also registers a workspace deployed before deploys registered first.
    register_workspace(ctx, tenant_id, workspace_id)
    _point_current(ctx, tenant_id, workspace_id, str(previous["response"]["manifestId"]))
    schedule_deploy.complete_replayed_deploy(ctx, tenant_id, workspace_id, previous["response"]["manifestId"])
    return 200, dict(previous["response"])


def _point_current(ctx: ServiceContext, tenant_id: str, workspace_id: str, manifest_id: str) -> None:
    store = ctx.workspace_store(tenant_id, workspace_id)
    for _ in range(_CAS_RETRIES):
        current = store.get(INDEX)
        if current is not None and loads_strict(current.data).get("manifestId", "") >= manifest_id:
            return  # a newer deploy already points the index past ours
        try:
            store.put(
                INDEX,
                canonical_bytes({"manifestId": manifest_id}),
                if_generation_match=current.generation if current else 0,
            )
            return
        except PreconditionFailed:
            continue
    raise Conflict("too many concurrent deploys; retry")


def load_current_manifest(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> DeployedManifest | None:
    index = ctx.workspace_store(tenant_id, workspace_id).get(INDEX)
    if index is None:
        return None
    return load_manifest(ctx, tenant_id, workspace_id, loads_strict(index.data)["manifestId"])


def load_manifest(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, manifest_id: str
) -> DeployedManifest:
    """One deployed manifest by id (a run is rebuilt against the manifest it was planned on)."""
    store = ctx.workspace_store(tenant_id, workspace_id)
    # A deployed manifest never changes, so a warm instance parses and validates it once.
    cache_key = f"manifest:{tenant_id}/{workspace_id}/{manifest_id}"
    cached = ctx.cache.get(cache_key)
    if isinstance(cached, DeployedManifest):
        return cached
    obj = store.get(f"manifests/{manifest_id}.json")
    if obj is None:
        raise NotFound(f"manifest {manifest_id} is missing")
    stored = loads_strict(obj.data)
    body = stored["manifest"]
    manifest = DeployedManifest(
        manifest_id=manifest_id,
        code_version_id=body["codeVersionId"],
        assets=parse_assets(body),
        deployed_at=stored["deployedAt"],
        body=body,
    )
    ctx.cache[cache_key] = manifest
    return manifest


_MANIFEST_NAME = re.compile(r"manifests/([^/_][^/]*)\.json")


def deployed_before(ctx: ServiceContext, tenant_id: str, workspace_id: str, manifest_id: str) -> list[str]:
    """The ids of the manifests deployed before ``manifest_id``, newest first (one listing; ids sort
    in deploy order, as the current pointer compares them)."""
    store = ctx.workspace_store(tenant_id, workspace_id)
    names = (m.name for m in store.list("manifests/", end_offset=f"manifests/{manifest_id}.json"))
    found = (_MANIFEST_NAME.fullmatch(n) for n in names)
    return sorted((f[1] for f in found if f is not None and f[1] < manifest_id), reverse=True)


def get_current_manifest(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> dict[str, Any]:
    manifest = load_current_manifest(ctx, tenant_id, workspace_id)
    if manifest is None:
        raise NotFound(f"no manifest deployed in workspace '{workspace_id}'")
    return {
        "manifestId": manifest.manifest_id,
        "workspaceId": workspace_id,
        "deployedAt": manifest.deployed_at,
        "manifest": manifest.body,
    }
