"""TriggerRun (behavior §3–§4, contracts §7, design §2 and §5): the run-key protocol around a run's creation.

Explicit selection only. A ``run_key`` (body ``runKey`` or the ``Idempotency-Key`` header) is reserved
create-if-absent *after* the request fully validates, so a rejected request never burns the key. The
reservation names the run's ids; the run's creation record (``run_creation``) then holds everything its
events are made of, so whoever finishes the creation — the creator, a same-key retry, the sweep —
writes the creator's exact bytes. A retry of a key whose run is not published or still has no plan
finishes the creation before it answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from servo.core.canonical_json import loads_strict
from servo.core.errors import Conflict, InvalidInput, PlanError, PreconditionFailed
from servo.core.fingerprints import fingerprints_match, request_fingerprint, request_fingerprint_variants
from servo.core.ids import run_key_object_name
from servo.core.keys import b64u_encode, canonical_selection
from servo.core.planner import unknown_keys_message
from servo.core.timefmt import format_timestamp, parse_timestamp
from servo.services.context import ServiceContext
from servo.services.manifests import DeployedManifest, load_current_manifest
from servo.services.run_creation import (
    CreationRecord,
    finish_creation,
    plan_run,
    rebuild_events,
    record_name,
    run_events,
    store_record,
)
from servo.services.trigger_dispatch import append_creation
from servo.services.trigger_partition import resolve_partition
from servo.services.trigger_request import TriggerRequest, parse_trigger_request

__all__ = [
    "KeyClaim",
    "TriggerRequest",
    "answer_existing",
    "create_run",
    "parse_trigger_request",
    "resolve_partition",
    "trigger_run",
]

_RESERVATION_BACKOFF_S = (0.005, 0.010, 0.020, 0.040, 0.080)


def _reservation_body(record: CreationRecord, fingerprint: str) -> bytes:
    # Struct-field order, compact (contracts §7.1): not canonical JSON.
    body = {
        "runKey": record.run_key,
        "runId": record.run_id,
        "planId": record.plan_id,
        "eventId": record.event_id,
        "planEventId": record.plan_event_id,
        "requestFingerprint": fingerprint,
        "createdAt": record.created_at,
        # Servo addition after the contract's fields: what the run's events are made of, so whoever
        # finishes the creation writes the creator's bytes (run_creation).
        "creation": record.to_doc(),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _validated_record(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    request: TriggerRequest,
    ids: tuple[str, str, str, str],
    created_at: str,
    trigger: Mapping[str, Any] | None = None,
) -> tuple[CreationRecord, DeployedManifest, Any]:
    """Validate the request against the current manifest: the run's record, that manifest and the plan."""
    manifest = load_current_manifest(ctx, tenant_id, workspace_id)
    if manifest is None:
        raise InvalidInput(f"no manifest deployed in workspace '{workspace_id}'; run `servo deploy` first")
    try:
        roots = canonical_selection(request.selection)
    except InvalidInput as exc:
        raise InvalidInput(f"invalid selection: {exc.message}") from None
    unknown = sorted(r for r in roots if r not in manifest.assets)
    if unknown:
        raise PlanError(unknown_keys_message(unknown, manifest.assets))
    run_id, plan_id, event_id, plan_event_id = ids
    record = CreationRecord(
        run_id=run_id,
        plan_id=plan_id,
        event_id=event_id,
        plan_event_id=plan_event_id,
        created_at=created_at,
        manifest_id=manifest.manifest_id,
        roots=tuple(roots),
        include_upstream=request.include_upstream,
        include_downstream=request.include_downstream,
        partition_key=resolve_partition(manifest, roots, request),
        run_key=request.run_key,
        labels=request.labels,
        timeout_seconds=request.timeout_seconds,
        traceparent=request.traceparent,
        heartbeat_timeout_sec=ctx.settings.heartbeat_timeout_sec,
        trigger=trigger,
    )
    return record, manifest, plan_run(manifest, record, tenant_id, workspace_id)


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
    store = ctx.workspace_store(tenant_id, workspace_id)
    claim = _claim_of(ctx, tenant_id, workspace_id, request, trigger)
    # The cheap check first: an existing reservation answers without touching the manifest.
    if claim is not None:
        existing = store.get(run_key_object_name(claim.run_key))
        if existing is not None:
            return answer_existing(ctx, tenant_id, workspace_id, claim, existing.data)

    now = ctx.clock_ms()
    ids = (ctx.ids.new(now), ctx.ids.new(now), ctx.ids.new(now), ctx.ids.new(now))
    record, manifest, the_plan = _validated_record(
        ctx, tenant_id, workspace_id, request, ids, format_timestamp(now), trigger
    )
    reserved = None
    if claim is not None:
        reserved = request_fingerprint(
            record.roots,
            record.include_upstream,
            record.include_downstream,
            record.partition_key,
            record.labels,
        )
    return create_run(ctx, tenant_id, workspace_id, record, manifest, the_plan, claim, reserved)


@dataclass(frozen=True, slots=True)
class KeyClaim:
    """A request's claim on a run key: its fingerprint and every one an older writer stored for it."""

    run_key: str
    fingerprint: str
    variants: frozenset[str]
    # The run's record for a reservation too old to carry a copy (TriggerRun's), from these ids and time.
    remake: Callable[[tuple[str, str, str, str], str], CreationRecord] | None = None


def _claim_of(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    request: TriggerRequest,
    trigger: Mapping[str, Any] | None = None,
) -> KeyClaim | None:
    if request.run_key is None:
        return None
    fingerprint = _request_fingerprint_without_manifest(request)
    variants = request_fingerprint_variants(
        canonical_selection(request.selection),
        request.include_upstream,
        request.include_downstream,
        request.partition_key,
        request.labels,
        legacy_partitions=request.legacy_partitions,
    ) | {fingerprint}

    def remake(ids: tuple[str, str, str, str], created_at: str) -> CreationRecord:
        return _validated_record(ctx, tenant_id, workspace_id, request, ids, created_at, trigger)[0]

    return KeyClaim(request.run_key, fingerprint, frozenset(variants), remake)


def create_run(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    record: CreationRecord,
    manifest: DeployedManifest,
    the_plan: Any,
    claim: KeyClaim | None,
    reserved_fingerprint: str | None,
) -> tuple[int, dict[str, Any]]:
    """Reserve the run key (if any), store the record, append the run's events: the one way a run starts.

    A lost reservation race answers as the run that won it (or 409 for another payload).
    """
    store = ctx.workspace_store(tenant_id, workspace_id)
    if claim is not None:
        name = run_key_object_name(claim.run_key)
        try:
            store.create(name, _reservation_body(record, reserved_fingerprint or claim.fingerprint))
        except PreconditionFailed:
            return answer_existing(ctx, tenant_id, workspace_id, claim, _reread(store, name))
    stored = store_record(ctx, tenant_id, workspace_id, record)
    if stored == record:
        events = run_events(tenant_id, workspace_id, record, manifest, the_plan)
    else:  # a same-key retry finished our creation while we were slow: its record is the run's
        events = rebuild_events(ctx, tenant_id, workspace_id, stored)
    append_creation(ctx, tenant_id, workspace_id, stored.run_id, events)
    return 201, {
        "runId": record.run_id,
        "planId": record.plan_id,
        "state": "PENDING",
        "created": True,
        "createdAt": record.created_at,
    }


def _reread(store: Any, name: str) -> bytes:
    for delay in (0.0, *_RESERVATION_BACKOFF_S):
        if delay:
            time.sleep(delay)
        obj = store.get(name)
        if obj is not None:
            return bytes(obj.data)
    raise Conflict("run_key reservation is busy; retry")


def answer_existing(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, claim: KeyClaim, raw: bytes
) -> tuple[int, dict[str, Any]]:
    """The answer to a request whose run key is already reserved: that run, or 409 for another payload."""
    existing = loads_strict(raw)
    if existing.get("runKey") != claim.run_key:
        raise Conflict(f"run_key reservation collision for '{claim.run_key}'")
    fingerprint = claim.fingerprint
    stored = existing.get("requestFingerprint")
    created_ms = parse_timestamp(existing["createdAt"])
    if not fingerprints_match(stored, fingerprint, set(claim.variants), created_ms, None):
        raise Conflict(
            f"run_key '{claim.run_key}' already reserved by run {existing.get('runId')} "
            "with different trigger payload",
            details={
                "conflictType": "RUN_KEY_FINGERPRINT_MISMATCH",
                "runKey": claim.run_key,
                "existingRunId": existing.get("runId"),
                "existingPlanId": existing.get("planId"),
                "existingFingerprint": stored,
                "requestedFingerprint": fingerprint,
                "existingCreatedAt": existing.get("createdAt"),
            },
        )
    state = _existing_state(ctx, tenant_id, workspace_id, claim, existing)
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
    claim: KeyClaim,
    reservation: Mapping[str, Any],
) -> str:
    from servo.services.runs import public_run_state_of

    state = public_run_state_of(ctx, tenant_id, workspace_id, reservation["runId"])
    if state is None or state == "PENDING":
        # Not published, or published without its plan: the creator may have died between its writes.
        _finish_reserved_run(ctx, tenant_id, workspace_id, claim, reservation)
        return state or "PENDING"
    return state


def _finish_reserved_run(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    claim: KeyClaim,
    reservation: Mapping[str, Any],
) -> None:
    """Write what the reserved run still lacks (behavior §4, scenario 41), from its creation record.

    A reservation whose record never landed (the creator died, or is slow, in between) stores the
    copy the reservation carries; the events are built from the stored record alone, so any number
    of retries and the creator itself write the same bytes. A reservation older than that copy gets a
    record made from this request (the same payload, as its fingerprint matched) with the reserved ids.
    """
    if not reservation.get("planEventId"):
        return
    run_id = reservation["runId"]
    if ctx.workspace_store(tenant_id, workspace_id).get(record_name(run_id)) is None:
        if isinstance(reservation.get("creation"), Mapping):
            record = CreationRecord.from_doc(reservation["creation"])
        elif claim.remake is not None:
            ids = (run_id, reservation["planId"], reservation["eventId"], reservation["planEventId"])
            record = claim.remake(ids, reservation["createdAt"])
        else:
            return
        store_record(ctx, tenant_id, workspace_id, record)
    finish_creation(ctx, tenant_id, workspace_id, run_id)
