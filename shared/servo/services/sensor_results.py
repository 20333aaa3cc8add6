"""The worker's report of one sensor evaluation (automation §4, §6.2):
``POST /v1/sensor-evaluations/{id}/result``.

The token is scoped to that one evaluation (401 otherwise, task tokens included); a malformed body is
400; a second report 409 ``evaluation_already_reported``. Run requests breaking the definition make the
evaluation ERROR naming them. The result is recorded as ``SensorEvaluated``, and that is all this writes
besides its log (§6.3, least privilege): whether it applies is the fold's compare-and-set (a stale one is
SKIPPED_STALE, its requests dropped), and the compactor's act phase, after publishing the sensor state,
submits an applied one's requests (the sweep repairs what it does not get to).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from servo.core.errors import CallbackRejected, Conflict, InvalidInput, NotFound, Unauthorized
from servo.core.events import Event, SensorEvaluated, decode_event
from servo.core.fingerprints import request_fingerprint
from servo.core.sensors import (
    InvalidSensor,
    ResultRequest,
    check_cursor,
    check_result_requests,
    parse_evaluation_id,
)
from servo.core.timefmt import format_timestamp
from servo.services.context import ServiceContext
from servo.services.ledger import append_made, stamp
from servo.services.manifests import load_current_manifest
from servo.services.sensor_projection import refresh_sensors
from servo.services.sensor_sweep import spec_of
from servo.store import ObjectStore, create_once
from servo.tokens import verify_evaluation_token

MAX_LOG_BYTES = 64 * 1024
_RESULT_FIELDS = frozenset(
    {"status", "runRequests", "skipReason", "error", "cursorUpdated", "cursor", "itemsProcessed", "log"}
)


def _bearer(headers: Mapping[str, str]) -> str:
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth.startswith("Bearer ") else ""


def _request_json(request: ResultRequest) -> dict[str, Any]:
    out: dict[str, Any] = {
        "request_id": request.request_id,
        "run_key": request.run_key,
        "request_fingerprint": request_fingerprint(
            request.selection, False, False, request.partition_key, request.labels
        ),
        "selection": list(request.selection),
        "labels": dict(request.labels),
    }
    if request.partition_key is not None:
        out["partition_key"] = request.partition_key
    if request.item_id is not None:
        out["item_id"] = request.item_id
    return out


def _text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, not {type(value).__name__}")
    return value


def report_result(
    ctx: ServiceContext, evaluation_id: str, headers: Mapping[str, str], body: Mapping[str, Any]
) -> dict[str, Any]:
    """Record one evaluation's result.

    Raises:
        CallbackRejected: in the worker-protocol shape: 400 ``invalid_argument`` (a malformed id or
            body), 401 ``invalid_token`` (no token for this evaluation), 404 ``evaluation_not_found``,
            409 ``evaluation_already_reported``.
    """
    try:
        return _report(ctx, evaluation_id, headers, body)
    except InvalidInput as exc:
        raise CallbackRejected(400, "invalid_argument", exc.message) from None
    except Unauthorized as exc:
        raise CallbackRejected(401, "invalid_token", exc.message) from None
    except NotFound as exc:
        raise CallbackRejected(404, "evaluation_not_found", exc.message) from None
    except Conflict as exc:
        raise CallbackRejected(409, "evaluation_already_reported", exc.message) from None


def _report(
    ctx: ServiceContext, evaluation_id: str, headers: Mapping[str, str], body: Mapping[str, Any]
) -> dict[str, Any]:
    ref = parse_evaluation_id(evaluation_id)
    claims = verify_evaluation_token(
        ctx.settings.token_keys, _bearer(headers), ctx.clock_ms() // 1000, evaluation_id
    )
    tenant_id, workspace_id = str(claims.get("tenantId")), str(claims.get("workspaceId"))
    unknown = sorted(set(body) - _RESULT_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown result field(s) {', '.join(unknown)}")
    status = body.get("status")
    if status not in ("TRIGGERED", "SKIPPED", "ERROR"):
        raise InvalidInput(f"status must be TRIGGERED, SKIPPED or ERROR, not {status!r}")
    raw_requests = body.get("runRequests") or []
    if not isinstance(raw_requests, list):
        raise InvalidInput("runRequests must be a list")
    if raw_requests and status != "TRIGGERED":
        raise InvalidInput("only a TRIGGERED result carries runRequests")
    cursor_updated = body.get("cursorUpdated", False)
    if not isinstance(cursor_updated, bool):
        raise InvalidInput("cursorUpdated must be true or false")
    try:
        cursor = check_cursor(body.get("cursor"))
    except InvalidSensor as exc:
        raise InvalidInput(exc.message) from None
    skip_reason, error, log_text = _text(body, "skipReason"), _text(body, "error"), _text(body, "log")
    if log_text is not None and len(log_text.encode("utf-8")) > MAX_LOG_BYTES:
        raise InvalidInput(f"log is over {MAX_LOG_BYTES} bytes (64 KiB)")

    tables = refresh_sensors(ctx, tenant_id, workspace_id, publish=False)
    log = tables.log.sensors.get(ref.sensor_id)
    asked = None if log is None else log.requested.get(evaluation_id)
    if log is None or asked is None:
        raise NotFound(f"evaluation '{evaluation_id}' not found")
    if evaluation_id in log.results:
        raise _already_reported(evaluation_id)
    request = asked.data
    checked: list[ResultRequest] = []
    spec = spec_of(log)
    if status == "TRIGGERED" and spec is not None:
        manifest = load_current_manifest(ctx, tenant_id, workspace_id)
        dims_of = {k: list(a.dimensions) for k, a in (manifest.assets.items() if manifest else ())}
        try:
            checked = check_result_requests(
                spec,
                evaluation_id,
                request.expected_state_version,
                raw_requests,
                spec.target_dimensions(dims_of),
                now_s=ctx.clock_ms() // 1000,
                item_ids=request.item_ids,
            )
        except InvalidSensor as exc:
            status, error, checked = "ERROR", exc.message, []
    if log_text:
        store = ctx.workspace_store(tenant_id, workspace_id)
        # One object per evaluation, written once (a retried report finds it there).
        create_once(
            store, f"logs/sensors/{ref.sensor_id}/{evaluation_id.replace(':', '_')}.log", log_text.encode()
        )
    result = SensorEvaluated(
        sensor_id=ref.sensor_id,
        evaluation_id=evaluation_id,
        expected_state_version=request.expected_state_version,
        trigger=request.trigger,
        status=str(status),
        cursor_updated=cursor_updated and status != "ERROR",
        cursor=cursor if cursor_updated and status != "ERROR" else None,
        item_ids=request.item_ids,
        run_requests=tuple(_request_json(r) for r in checked) if status == "TRIGGERED" else (),
        reason=skip_reason,
        error=error if status == "ERROR" else None,
    )
    made = stamp(ctx, tenant_id, workspace_id, result)
    recorded = _claim_report(ctx.workspace_store(tenant_id, workspace_id), made)
    # The claimed result is appended by whoever holds it: a claimer that died before its append is
    # completed by the next report (the same bytes under the same name), so nothing claimed is lost.
    append_made(ctx, tenant_id, workspace_id, [recorded])
    if recorded[0].event_id != made[0].event_id:
        raise _already_reported(evaluation_id)
    return {"acknowledged": True, "serverTime": format_timestamp(ctx.clock_ms())}


def report_claim_name(evaluation_id: str) -> str:
    """One report per evaluation: the object whose create-if-absent decides which report is recorded."""
    digest = hashlib.sha256(f"sensor_evaluation\0{evaluation_id}".encode()).hexdigest()[:40]
    return f"attempt_claims/sensors/{digest}.json"


def _claim_report(store: ObjectStore, made: tuple[Event, bytes]) -> tuple[Event, bytes]:
    """The result recorded for this evaluation, with its bytes: ``made`` when its claim is the first,
    else the event an earlier report claimed (two reports at once both pass the check against the
    projection)."""
    event, body = made
    assert isinstance(event.data, SensorEvaluated)
    name = report_claim_name(event.data.evaluation_id)
    if create_once(store, name, body):
        return made
    claimed = store.get(name)
    if claimed is None:  # claims are never deleted
        raise Conflict(f"the report claim {name} vanished")
    return decode_event(claimed.data), claimed.data


def _already_reported(evaluation_id: str) -> Conflict:
    return Conflict(
        f"evaluation '{evaluation_id}' was already reported",
        details={"conflictType": "evaluation_already_reported", "evaluationId": evaluation_id},
    )
