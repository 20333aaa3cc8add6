"""Backfills as the API shows them (automation §4, §6.4): create, retry-failed, pause/resume/cancel, reads.

Create reserves its Idempotency-Key under ``requests/backfills/`` (create-if-absent) together with the
BackfillCreated event it resolved, then appends that event: a replay with the same body re-appends the
same object and answers 200 with the same backfill; another body under the key is 409. Partitions are
resolved against the current manifest once and stored, never recomputed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from servo.core._key_text import b64u_encode
from servo.core.backfill_fold import BackfillChunkRow, BackfillRow, chunk_requests
from servo.core.backfill_partitions import (
    backfill_dimensions,
    check_backfill_settings,
    resolve_partitions,
)
from servo.core.backfills import (
    BACKFILL_STATES,
    CANCELLED,
    RUNNING,
    backfill_id,
    operator_move,
    outcome_counts,
    retry_failed_partitions,
)
from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import Conflict, InvalidAssetKey, InvalidInput, NotFound
from servo.core.events import BackfillCreated, BackfillStateChanged, Event, decode_event
from servo.core.keys import canonical_selection
from servo.core.schedule_fold import ScheduleState
from servo.core.timefmt import format_timestamp
from servo.services._compaction_ledger import DEFAULT_LOOKBACK_MS
from servo.services.backfill_planner import chunks_of, plan_backfills, settler
from servo.services.context import ServiceContext
from servo.services.ledger import append_made, stamp
from servo.services.manifests import MAX_IDEMPOTENCY_KEY_BYTES, load_current_manifest
from servo.services.runs import _decode_cursor as decode_cursor
from servo.services.runs import _encode_cursor as encode_cursor
from servo.services.runs import page_limit
from servo.services.schedule_projection import refresh_schedules
from servo.services.trigger_request import parse_labels
from servo.store import create_once

RESERVATIONS = "requests/backfills/"
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
_CREATE_FIELDS = frozenset(
    {"assets", "partitions", "chunkSize", "maxConcurrentRuns", "labels", "clientRequestId"}
)
_RETRY_FIELDS = frozenset({"chunkSize", "maxConcurrentRuns", "clientRequestId"})
_MOVE_FIELDS = frozenset({"expectedStateVersion", "reason"})
MAX_REASON = 1024


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={"field": field})


def _fields(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    if not isinstance(body, Mapping):
        raise InvalidInput("the body must be a JSON object")
    extra = sorted(set(body) - allowed)
    if extra:
        raise _bad(extra[0], f"unknown field; expected some of {', '.join(sorted(allowed))}")


def _key(body: Mapping[str, Any], idempotency_key: str | None) -> str:
    key = idempotency_key if idempotency_key is not None else body.get("clientRequestId")
    if key is None:
        raise _bad(
            "Idempotency-Key", "a backfill is created with an Idempotency-Key header or a clientRequestId"
        )
    if not isinstance(key, str) or not 0 < len(key.encode()) <= MAX_IDEMPOTENCY_KEY_BYTES:
        raise _bad("Idempotency-Key", f"must be a string of 1..{MAX_IDEMPOTENCY_KEY_BYTES} bytes")
    return key


def _assets(raw: object) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise _bad("assets", "must be a list of asset keys")
    if not raw:
        raise _bad("assets", "name at least one asset")
    try:
        return canonical_selection(raw)
    except InvalidAssetKey as exc:
        raise _bad("assets", exc.message) from None


def _state(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, hint: list[str] | None = None
) -> ScheduleState:
    # A read looks back as far as the compactor: a client polling a running backfill must not re-read
    # minutes of ledger each time (what lands later is the sweep's to fold).
    ctx.settle(tenant_id, workspace_id)  # chunk runs just triggered show (or are cancelled) at once
    settle = settler(ctx, tenant_id, workspace_id)
    return refresh_schedules(
        ctx, tenant_id, workspace_id, hint or (), settle=settle, lookback_ms=DEFAULT_LOOKBACK_MS
    )


def _row(state: ScheduleState, backfill: str) -> BackfillRow:
    row = state.backfills.get(backfill)
    if row is None or not row.created:
        raise NotFound(f"backfill '{backfill}' not found")
    return row


# -- create ----------------------------------------------------------------------------------------


def create_backfill(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    body: Mapping[str, Any],
    idempotency_key: str | None,
) -> tuple[int, dict[str, Any]]:
    """POST /backfills: 201 new, 200 replay, 400 naming the field, 409 IDEMPOTENCY_KEY_REUSED (B1, B2)."""
    _fields(body, _CREATE_FIELDS)
    key = _key(body, idempotency_key)
    assets = _assets(body.get("assets"))
    size, most = check_backfill_settings(body.get("chunkSize"), body.get("maxConcurrentRuns"))
    try:
        labels = parse_labels(body)
    except InvalidInput as exc:
        raise _bad("labels", exc.message) from None
    if "partitions" not in body:
        raise _bad("partitions", "give {range: {start, end}} or {explicit: [keys]}")
    request = {
        "assets": assets,
        "partitions": body["partitions"],
        "chunkSize": size,
        "maxConcurrentRuns": most,
        "labels": labels,
    }

    def resolve() -> BackfillCreated:
        manifest = load_current_manifest(ctx, tenant_id, workspace_id)
        dims_of = {k: list(a.dimensions) for k, a in (manifest.assets.items() if manifest else ())}
        dims = backfill_dimensions(assets, dims_of)
        keys = resolve_partitions(body["partitions"], dims, now_ms=ctx.clock_ms())
        bf = backfill_id(tenant_id, workspace_id, key)
        selector = dict(body["partitions"])
        return BackfillCreated(bf, tuple(assets), selector, keys, size, most, labels=labels or None)

    return _create(ctx, tenant_id, workspace_id, key, request, resolve)


def _create(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    key: str,
    request: Mapping[str, Any],
    resolve: Any,
) -> tuple[int, dict[str, Any]]:
    fingerprint = "sha256:" + hashlib.sha256(canonical_bytes(request)).hexdigest()
    store = ctx.workspace_store(tenant_id, workspace_id)
    name = f"{RESERVATIONS}{b64u_encode(key.encode())}.json"
    found = store.get(name)
    made: tuple[Event, bytes] | None = None  # the event this request reserved, as it was written
    if found is None:
        created: BackfillCreated = resolve()  # resolved before anything is written: bad input changes nothing
        made = stamp(ctx, tenant_id, workspace_id, created)
        record = {"fingerprint": fingerprint, "backfillId": created.backfill_id, "event": made[1].decode()}
        if not create_once(store, name, canonical_bytes(record)):
            made = None  # another request with this key reserved first
        found = store.get(name)
        assert found is not None
    reserved = loads_strict(found.data)
    if reserved["fingerprint"] != fingerprint:
        raise Conflict(
            f"Idempotency-Key '{key}' was already used for another backfill request",
            details={"conflictType": "IDEMPOTENCY_KEY_REUSED", "backfillId": reserved["backfillId"]},
        )
    # The sweep knows the workspace already (its deploy registered it). A replay re-appends the reserved
    # object (identical bytes: a no-op), so a crash after the reservation is completed by the retry.
    status = 200 if made is None else 201
    if made is None:
        kept = reserved["event"].encode()
        made = (decode_event(kept), kept)
    names = append_made(ctx, tenant_id, workspace_id, [made])
    plan_backfills(ctx, tenant_id, workspace_id, names)
    return status, {"backfillId": reserved["backfillId"], "created": status == 201}


def retry_failed(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    parent_id: str,
    body: Mapping[str, Any],
    idempotency_key: str | None,
) -> tuple[int, dict[str, Any]]:
    """POST /backfills/{id}/retry-failed: a child of exactly the parent's partitions that did not succeed,
    same assets and labels, settings inherited unless given (B8; 409 PARENT_NOT_FAILED)."""
    _fields(body, _RETRY_FIELDS)
    key = _key(body, idempotency_key)
    parent = _row(_state(ctx, tenant_id, workspace_id), parent_id)
    size, most = check_backfill_settings(
        body.get("chunkSize", parent.chunk_size), body.get("maxConcurrentRuns", parent.max_concurrent_runs)
    )
    request = {"retryOf": parent_id, "chunkSize": size, "maxConcurrentRuns": most}

    def resolve() -> BackfillCreated:
        state = _state(ctx, tenant_id, workspace_id)
        row = _row(state, parent_id)
        pairs = [
            (k, outcome)
            for chunk in chunks_of(state, row)
            for k, outcome in zip(chunk.keys(), _outcomes(chunk), strict=True)
        ]
        keys = retry_failed_partitions(row.state, pairs)
        bf = backfill_id(tenant_id, workspace_id, key)
        labels = row.label_map() or None
        selector = {"explicit": list(keys)}
        assets = tuple(row.asset_list())
        return BackfillCreated(
            bf, assets, selector, keys, size, most, labels=labels, parent_backfill_id=parent_id
        )

    return _create(ctx, tenant_id, workspace_id, key, request, resolve)


# -- moves -----------------------------------------------------------------------------------------


def move_backfill(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    backfill: str,
    action: str,
    body: Mapping[str, Any],
) -> tuple[int, dict[str, Any]]:
    """pause/resume/cancel: 202 {backfillId, from, to, stateVersion}; 200 changed:false when already
    there; 409 ILLEGAL_TRANSITION or VERSION_CONFLICT (B6, B7)."""
    _fields(body, _MOVE_FIELDS)
    expected = body.get("expectedStateVersion")
    if expected is not None and (not isinstance(expected, int) or isinstance(expected, bool) or expected < 1):
        raise _bad("expectedStateVersion", "must be an integer >= 1")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise _bad("reason", f"must be a string of at most {MAX_REASON} characters")
    row = _row(_state(ctx, tenant_id, workspace_id), backfill)
    move = operator_move(action, row.state, row.state_version, expected)
    if move is None:
        return 200, {
            "backfillId": backfill,
            "from": row.state,
            "to": row.state,
            "stateVersion": row.state_version,
            "changed": False,
        }
    moved = BackfillStateChanged(backfill, move.from_state, move.to_state, move.state_version, reason=reason)
    made = stamp(ctx, tenant_id, workspace_id, moved)
    names = append_made(ctx, tenant_id, workspace_id, [made])
    after = _row(_state(ctx, tenant_id, workspace_id, names), backfill)
    if not any(m["eventId"] == made[0].event_id and m["applied"] for m in after.transitions()):
        raise Conflict(
            f"backfill {backfill} moved meanwhile; it is {after.state} at version {after.state_version}",
            details={"conflictType": "VERSION_CONFLICT", "stateVersion": after.state_version},
        )
    plan_backfills(ctx, tenant_id, workspace_id)  # resume plans, cancel cancels runs and rejects requests
    return 202, {
        "backfillId": backfill,
        "from": move.from_state,
        "to": move.to_state,
        "stateVersion": move.state_version,
    }


# -- reads -----------------------------------------------------------------------------------------


def _outcomes(chunk: BackfillChunkRow) -> list[str]:
    """Per position: the settled outcome, else PENDING (CANCELLED for an unplanned cancelled chunk)."""
    if chunk.planned:
        return json.loads(chunk.outcomes) or ["PENDING"] * len(chunk.keys())
    return [CANCELLED if chunk.state == CANCELLED else "PENDING"] * len(chunk.keys())


def backfill_json(row: BackfillRow, chunks: list[BackfillChunkRow]) -> dict[str, Any]:
    outcomes = [o for c in chunks for o in _outcomes(c)]
    out: dict[str, Any] = {
        "backfillId": row.backfill_id,
        "state": row.state,
        "stateVersion": row.state_version,
        "assets": row.asset_list(),
        "partitions": json.loads(row.selector or "{}"),
        "chunkSize": row.chunk_size,
        "maxConcurrentRuns": row.max_concurrent_runs,
        "labels": row.label_map(),
        "totalPartitions": row.total_partitions,
        "activeRuns": sum(1 for o in outcomes if o == RUNNING),
        "partitionCounts": outcome_counts(outcomes, row.total_partitions),
        "chunkCounts": outcome_counts([c.state for c in chunks], row.chunk_count),
        "transitions": [
            {"from": m["from"], "to": m["to"], "stateVersion": m["stateVersion"], "applied": m["applied"]}
            | ({"reason": m["reason"]} if m.get("reason") else {})
            for m in row.transitions()
        ],
    }
    if row.created_at is not None:
        out["createdAt"] = format_timestamp(row.created_at)
    if row.parent_backfill_id is not None:
        out["parentBackfillId"] = row.parent_backfill_id
    return out


def chunk_json(chunk: BackfillChunkRow) -> dict[str, Any]:
    statuses = json.loads(chunk.request_statuses)
    runs = json.loads(chunk.run_ids)
    partitions = []
    for j, (_request_id, run_key, key) in enumerate(chunk_requests(chunk)):
        item: dict[str, Any] = {"partitionKey": key, "runKey": run_key}
        if chunk.planned:
            item["requestStatus"] = (statuses[j] if j < len(statuses) else None) or "PENDING"
            if j < len(runs) and runs[j]:
                item["runId"] = runs[j]
        partitions.append(item)
    return {
        "chunkId": chunk.chunk_id,
        "index": chunk.chunk_index,
        "state": chunk.state,
        "partitions": partitions,
    }


def get_backfill(ctx: ServiceContext, tenant_id: str, workspace_id: str, backfill: str) -> dict[str, Any]:
    state = _state(ctx, tenant_id, workspace_id)
    row = _row(state, backfill)
    return backfill_json(row, chunks_of(state, row))


def list_backfills(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """Newest first, ``?state`` filtered, ``limit`` 1..200, paged by an opaque ``cursor``."""
    wanted = query.get("state")
    if wanted is not None and wanted not in BACKFILL_STATES:
        raise _bad("state", f"must be one of {', '.join(sorted(BACKFILL_STATES))}, not {wanted!r}")
    limit = page_limit(query, DEFAULT_LIMIT, MAX_LIMIT)
    after = decode_cursor(query["cursor"]) if query.get("cursor") else None
    state = _state(ctx, tenant_id, workspace_id)
    rows = sorted(
        (
            r
            for r in state.backfills.values()
            if r.created
            and wanted in (None, r.state)
            and (after is None or (-(r.created_at or 0), r.backfill_id) > (-after[0], after[1]))
        ),
        key=lambda r: (-(r.created_at or 0), r.backfill_id),
    )
    body: dict[str, Any] = {"backfills": [backfill_json(r, chunks_of(state, r)) for r in rows[:limit]]}
    if len(rows) > limit:
        last = rows[limit - 1]
        body["nextCursor"] = encode_cursor(last.created_at or 0, last.backfill_id)
    return body


def list_chunks(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, backfill: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """Chunks by index, ``limit`` 1..200, the cursor the next index."""
    limit = page_limit(query, DEFAULT_LIMIT, MAX_LIMIT)
    start = 0
    if query.get("cursor"):
        _, text = decode_cursor(query["cursor"])
        if not text.isdigit():
            raise InvalidInput("cursor is not valid")
        start = int(text)
    state = _state(ctx, tenant_id, workspace_id)
    chunks = chunks_of(state, _row(state, backfill))
    body: dict[str, Any] = {"chunks": [chunk_json(c) for c in chunks[start : start + limit]]}
    if start + limit < len(chunks):
        body["nextCursor"] = encode_cursor(0, str(start + limit))
    return body
