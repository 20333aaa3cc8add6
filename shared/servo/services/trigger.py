"""TriggerRun (behavior §3–§4, contracts §7, design §2 and §5).

Explicit selection only. A ``run_key`` (body ``runKey`` or the ``Idempotency-Key`` header) is reserved
create-if-absent *after* the request fully validates, so a rejected request never burns the key. The
reservation names the run's ids and event ids up front: if a crash lands between the reservation and
the ledger write, the next identical request re-emits exactly those events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from servo.core.canonical_json import loads_strict
from servo.core.errors import Conflict, InvalidInput, PlanError, PreconditionFailed
from servo.core.events import PlanCreated, RunTriggered, ledger_object_name, make_event
from servo.core.fingerprints import fingerprints_match, request_fingerprint, request_fingerprint_variants
from servo.core.ids import run_key_object_name
from servo.core.keys import b64u_encode, canonical_selection
from servo.core.partition_keys import PartitionValue, require_canonical_partition_key
from servo.core.planner import TaskOptions, plan
from servo.core.timefmt import format_timestamp, parse_timestamp
from servo.services.context import ServiceContext
from servo.services.manifests import DeployedManifest, load_current_manifest

MAX_RUN_KEY_BYTES = 256
MAX_PARTITION_KEY_BYTES = 1024
MAX_LABELS = 128
MAX_LABEL_KEY = 128
MAX_LABEL_VALUE = 2048
MAX_LEGACY_PARTITIONS = 128
RESERVED_LABEL_PREFIXES = ("servo.", "arco.")
_RESERVATION_BACKOFF_S = (0.005, 0.010, 0.020, 0.040, 0.080)


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    selection: tuple[str, ...]
    include_upstream: bool
    include_downstream: bool
    partition_key: str | None
    legacy_partitions: tuple[tuple[str, str], ...] | None
    run_key: str | None
    labels: Mapping[str, str]
    timeout_seconds: int | None
    traceparent: str | None
    # What made the run (RunTriggered.trigger); None is a person's TriggerRun. Automation passes its
    # source here (e.g. ``{type: cron, schedule_id, tick_id}``) so a repaired run keeps it.
    trigger: Mapping[str, Any] | None = None


def _bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be a boolean")
    return value


def parse_trigger_request(
    body: Mapping[str, Any], idempotency_key: str | None, traceparent: str | None
) -> TriggerRequest:
    selection = body.get("selection")
    if not isinstance(selection, list) or not all(isinstance(s, str) for s in selection):
        raise InvalidInput("selection must be a list of asset keys")
    if not selection:
        raise InvalidInput("selection must name at least one asset")
    if len(selection) > 10_000:
        raise InvalidInput("selection may hold at most 10000 asset keys")
    run_key = body.get("runKey", idempotency_key)
    if run_key is not None and (
        not isinstance(run_key, str) or not run_key or len(run_key.encode()) > MAX_RUN_KEY_BYTES
    ):
        raise InvalidInput(f"runKey must be a string of 1..{MAX_RUN_KEY_BYTES} bytes")
    pk = body.get("partitionKey")
    if pk is not None:
        if not isinstance(pk, str) or len(pk.encode()) > MAX_PARTITION_KEY_BYTES:
            raise InvalidInput(f"partitionKey must be a string of at most {MAX_PARTITION_KEY_BYTES} bytes")
        pk = require_canonical_partition_key(pk) or None
    legacy = body.get("partitions")
    legacy_pairs: tuple[tuple[str, str], ...] | None = None
    if legacy is not None:
        if pk is not None:
            raise InvalidInput("partitionKey and partitions cannot be combined")
        if not isinstance(legacy, list) or len(legacy) > MAX_LEGACY_PARTITIONS:
            raise InvalidInput(f"partitions must be a list of at most {MAX_LEGACY_PARTITIONS} {{key, value}}")
        pairs = []
        for item in legacy:
            if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
                raise InvalidInput("each partition must be {key, value} strings")
            key, value = item["key"], item.get("value")
            if not isinstance(value, str) or len(key.encode()) > 64 or len(value.encode()) > 256:
                raise InvalidInput("partition keys are at most 64 bytes and values at most 256 bytes")
            pairs.append((key, value))
        legacy_pairs = tuple(sorted(pairs))
    labels = body.get("labels", {}) or {}
    if not isinstance(labels, Mapping) or len(labels) > MAX_LABELS:
        raise InvalidInput(f"labels must be an object of at most {MAX_LABELS} entries")
    for key, value in labels.items():
        if not isinstance(value, str) or not key or len(key) > MAX_LABEL_KEY or len(value) > MAX_LABEL_VALUE:
            raise InvalidInput(
                f"label {key!r}: keys are 1..{MAX_LABEL_KEY} chars, values strings ≤ {MAX_LABEL_VALUE}"
            )
        if key.startswith(RESERVED_LABEL_PREFIXES):
            raise InvalidInput(f"label {key!r} uses a reserved prefix (servo.*)")
    timeout = body.get("timeoutSeconds")
    if timeout is not None and (
        not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 7 * 86400
    ):
        raise InvalidInput("timeoutSeconds must be an integer from 1 to 604800")
    return TriggerRequest(
        selection=tuple(selection),
        include_upstream=_bool(body, "includeUpstream"),
        include_downstream=_bool(body, "includeDownstream"),
        partition_key=pk,
        legacy_partitions=legacy_pairs,
        run_key=run_key,
        labels={k: labels[k] for k in sorted(labels, key=lambda s: s.encode())},
        timeout_seconds=timeout,
        traceparent=traceparent,
    )


def _legacy_value(dim: Mapping[str, Any], value: str) -> PartitionValue:
    """A legacy string partition value, tagged by the manifest dimension's kind (user-surface §1.3)."""
    if dim.get("kind") == "time":
        granularity = dim.get("granularity", "day")
        if granularity == "hour":
            return PartitionValue("t", value if len(value) == 27 else f"{value[:13]}:00:00.000000Z")
        if granularity == "day":
            return PartitionValue("d", value)
    return PartitionValue("s", value)


def resolve_partition(
    manifest: DeployedManifest, roots: Sequence[str], request: TriggerRequest
) -> str | None:
    """The canonical partition key of the run, checked against the roots' deployed partitioning."""
    dims_by_root = {r: tuple(sorted(str(d["name"]) for d in manifest.assets[r].dimensions)) for r in roots}
    shapes = set(dims_by_root.values())
    if len(shapes) > 1:
        raise InvalidInput("the selected assets are partitioned differently; trigger them in separate runs")
    (dims,) = shapes
    pk = request.partition_key
    if request.legacy_partitions is not None:
        by_name = {str(d["name"]): d for d in manifest.assets[roots[0]].dimensions}
        values = {}
        for key, value in request.legacy_partitions:
            if key not in by_name:
                raise InvalidInput(f"unknown partition dimension {key!r}")
            values[key] = _legacy_value(by_name[key], value)
        from servo.core.partition_keys import PartitionKey

        pk = PartitionKey.of(values).render() or None
    if not dims:
        if pk:
            raise InvalidInput(f"assets {', '.join(roots)} are not partitioned; drop partitionKey")
        return None
    if not pk:
        raise InvalidInput(
            f"assets {', '.join(roots)} are partitioned by {', '.join(dims)}; pass partitionKey"
        )
    from servo.core.partition_keys import parse_partition_key

    given = tuple(sorted(k for k, _ in parse_partition_key(pk).dimensions))
    if given != dims:
        raise InvalidInput(
            f"partitionKey dimensions ({', '.join(given)}) must equal the assets' ({', '.join(dims)})"
        )
    return pk


def _reservation_body(
    run_key: str,
    run_id: str,
    plan_id: str,
    event_id: str,
    plan_event_id: str,
    fingerprint: str,
    created_at: str,
) -> bytes:
    # Struct-field order, compact (contracts §7.1): not canonical JSON.
    body = {
        "runKey": run_key,
        "runId": run_id,
        "planId": plan_id,
        "eventId": event_id,
        "planEventId": plan_event_id,
        "requestFingerprint": fingerprint,
        "createdAt": created_at,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class _Ids:
    run_id: str
    plan_id: str
    event_id: str
    plan_event_id: str
    now_ms: int


def _validated_plan(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, request: TriggerRequest
) -> tuple[DeployedManifest, Any, str]:
    """Validate the request against the current manifest: (manifest, plan, request fingerprint)."""
    manifest = load_current_manifest(ctx, tenant_id, workspace_id)
    if manifest is None:
        raise InvalidInput(f"no manifest deployed in workspace '{workspace_id}'; run `servo deploy` first")
    try:
        roots = canonical_selection(request.selection)
    except InvalidInput as exc:
        raise InvalidInput(f"invalid selection: {exc.message}") from None
    unknown = sorted(r for r in roots if r not in manifest.assets)
    if unknown:
        raise PlanError(f"unknown asset keys: {', '.join(unknown)}")
    partition_key = resolve_partition(manifest, roots, request)
    options = {
        k: TaskOptions(
            max_retries=a.max_retries,
            timeout_seconds=a.timeout_seconds,
            heartbeat_timeout_sec=ctx.settings.heartbeat_timeout_sec,
        )
        for k, a in manifest.assets.items()
    }
    the_plan = plan(
        manifest.graph(),
        roots,
        include_upstream=request.include_upstream,
        include_downstream=request.include_downstream,
        partition_key=partition_key,
        task_options=options,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
    )
    fingerprint = request_fingerprint(
        roots, request.include_upstream, request.include_downstream, partition_key, request.labels
    )
    return manifest, the_plan, fingerprint


def _run_events(
    tenant_id: str,
    workspace_id: str,
    request: TriggerRequest,
    manifest: DeployedManifest,
    the_plan: Any,
    ids: _Ids,
) -> list[Any]:
    triggered = make_event(
        RunTriggered(
            run_id=ids.run_id,
            plan_id=ids.plan_id,
            trigger=dict(request.trigger) if request.trigger else {"type": "manual", "user_id": "api"},
            root_assets=tuple(the_plan.root_assets),
            run_key=request.run_key,
            labels=dict(request.labels) or None,
            code_version=manifest.code_version_id,
            timeout_seconds=request.timeout_seconds,
            traceparent=request.traceparent,
        ),
        event_id=ids.event_id,
        timestamp_ms=ids.now_ms,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
    )
    planned = make_event(
        PlanCreated(run_id=ids.run_id, plan_id=ids.plan_id, tasks=tuple(the_plan.tasks)),
        event_id=ids.plan_event_id,
        timestamp_ms=ids.now_ms,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
        causation_id=ids.event_id,
    )
    return [triggered, planned]


def trigger_run(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    body: Mapping[str, Any],
    *,
    idempotency_key: str | None = None,
    traceparent: str | None = None,
    trigger: Mapping[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    request = parse_trigger_request(body, idempotency_key, traceparent)
    if trigger is not None:
        request = replace(request, trigger=trigger)
    store = ctx.workspace_store(tenant_id, workspace_id)
    # The cheap check first: an existing reservation answers without touching the manifest.
    if request.run_key is not None:
        existing = store.get(run_key_object_name(request.run_key))
        if existing is not None:
            return _answer_existing(ctx, tenant_id, workspace_id, request, existing.data)

    manifest, the_plan, fingerprint = _validated_plan(ctx, tenant_id, workspace_id, request)
    now = ctx.clock_ms()
    ids = _Ids(ctx.ids.new(now), ctx.ids.new(now), ctx.ids.new(now), ctx.ids.new(now), now)
    created_at = format_timestamp(now)
    if request.run_key is not None:
        name = run_key_object_name(request.run_key)
        reservation = _reservation_body(
            request.run_key, ids.run_id, ids.plan_id, ids.event_id, ids.plan_event_id, fingerprint, created_at
        )
        try:
            store.create(name, reservation)
        except PreconditionFailed:
            return _answer_existing(ctx, tenant_id, workspace_id, request, _reread(store, name))
    _emit(
        ctx, tenant_id, workspace_id, _run_events(tenant_id, workspace_id, request, manifest, the_plan, ids)
    )
    return 201, {
        "runId": ids.run_id,
        "planId": ids.plan_id,
        "state": "PENDING",
        "created": True,
        "createdAt": created_at,
    }


def _reread(store: Any, name: str) -> bytes:
    for delay in (0.0, *_RESERVATION_BACKOFF_S):
        if delay:
            time.sleep(delay)
        obj = store.get(name)
        if obj is not None:
            return bytes(obj.data)
    raise Conflict("run_key reservation is busy; retry")


def _emit(ctx: ServiceContext, tenant_id: str, workspace_id: str, events: Sequence[Any]) -> None:
    from servo.services.ledger import append_events

    append_events(ctx, tenant_id, workspace_id, events)


def _answer_existing(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, request: TriggerRequest, raw: bytes
) -> tuple[int, dict[str, Any]]:
    existing = loads_strict(raw)
    if existing.get("runKey") != request.run_key:
        raise Conflict(f"run_key reservation collision for '{request.run_key}'")
    fingerprint = _request_fingerprint_without_manifest(request)
    variants = request_fingerprint_variants(
        canonical_selection(request.selection),
        request.include_upstream,
        request.include_downstream,
        request.partition_key,
        request.labels,
        legacy_partitions=request.legacy_partitions,
    ) | {fingerprint}
    stored = existing.get("requestFingerprint")
    created_ms = parse_timestamp(existing["createdAt"])
    if not fingerprints_match(stored, fingerprint, variants, created_ms, None):
        raise Conflict(
            f"run_key '{request.run_key}' already reserved with different trigger payload",
            details={
                "conflictType": "RUN_KEY_FINGERPRINT_MISMATCH",
                "runKey": request.run_key,
                "existingRunId": existing.get("runId"),
                "existingPlanId": existing.get("planId"),
                "existingFingerprint": stored,
                "requestedFingerprint": fingerprint,
                "existingCreatedAt": existing.get("createdAt"),
            },
        )
    state = _existing_state(ctx, tenant_id, workspace_id, request, existing)
    return 200, {
        "runId": existing["runId"],
        "planId": existing["planId"],
        "state": state,
        "created": False,
        "createdAt": existing["createdAt"],
    }


def _request_fingerprint_without_manifest(request: TriggerRequest) -> str:
    pk = request.partition_key
    if request.legacy_partitions is not None:
        pk = ",".join(f"{k}=s:{b64u_encode(v.encode())}" for k, v in request.legacy_partitions) or None
    return request_fingerprint(
        canonical_selection(request.selection),
        request.include_upstream,
        request.include_downstream,
        pk,
        request.labels,
    )


def _existing_state(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    request: TriggerRequest,
    reservation: Mapping[str, Any],
) -> str:
    from servo.services.runs import public_run_state_of

    state = public_run_state_of(ctx, tenant_id, workspace_id, reservation["runId"])
    if state is None:
        _repair_missing_run(ctx, tenant_id, workspace_id, request, reservation)
        return "PENDING"
    return state


def _repair_missing_run(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    request: TriggerRequest,
    reservation: Mapping[str, Any],
) -> None:
    """A reservation whose run never reached the ledger (a crash in between): re-emit its events
    with the reserved ids and time, so a retry converges on exactly the run the key promised
    (behavior §4, scenario 41). Events already in the ledger are left alone."""
    store = ctx.workspace_store(tenant_id, workspace_id)
    if not reservation.get("planEventId"):
        return
    names = [ledger_object_name(reservation["eventId"]), ledger_object_name(reservation["planEventId"])]
    if all(store.get(n) is not None for n in names):
        return  # written, only not compacted yet
    manifest, the_plan, _ = _validated_plan(ctx, tenant_id, workspace_id, request)
    ids = _Ids(
        reservation["runId"],
        reservation["planId"],
        reservation["eventId"],
        reservation["planEventId"],
        parse_timestamp(reservation["createdAt"]),
    )
    events = _run_events(tenant_id, workspace_id, request, manifest, the_plan, ids)
    missing = [e for e, n in zip(events, names, strict=True) if store.get(n) is None]
    _emit(ctx, tenant_id, workspace_id, missing)
