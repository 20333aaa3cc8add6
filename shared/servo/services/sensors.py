"""Sensors as the API shows them (automation §4, §6.2): list, show, enable/disable, evaluations, a manual
evaluate, and the Pub/Sub push endpoint.

Reads come from the sensor projection, refreshed first so a read sees what was just written. Enable and
disable claim the step ``stateVersion + 1``; a step taken meanwhile by an evaluation means the change did
not happen, so it is claimed again at the next version (the compare-and-set loop of
``docs/design/sensors.md``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from servo.core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from servo.core.events import SensorEvaluationRequested, SensorMessageReceived, SensorStatusChanged
from servo.core.sensor_fold import PAUSED_WARNING, SensorLog, SensorView
from servo.core.sensor_rows import SensorTables, sensor_row
from servo.core.sensors import manual_evaluation_id, parse_evaluation_id
from servo.core.timefmt import format_timestamp
from servo.services.context import ServiceContext
from servo.services.ledger import append_made, stamp
from servo.services.runs import _decode_cursor as decode_cursor
from servo.services.runs import _encode_cursor as encode_cursor
from servo.services.runs import page_limit
from servo.services.schedule_projection import refresh_schedules
from servo.services.sensor_projection import refresh_sensors
from servo.services.sensor_sweep import due_request, request_evaluation, spec_of

EVALUATION_STATUSES = ("PENDING", "TRIGGERED", "SKIPPED", "ERROR", "SKIPPED_STALE", "EXPIRED")
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
MAX_MESSAGE_BYTES = 256 * 1024
MAX_ATTRIBUTES = 100
_MESSAGE_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_CAS_TRIES = 10


def _ts(ms: int | None) -> str | None:
    return None if ms is None else format_timestamp(ms)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def sensor_json(log: SensorLog, view: SensorView) -> dict[str, Any]:
    row = sensor_row(log, view)
    return _drop_none(
        {
            "sensorId": row.sensor_id,
            "definition": row.definition_json(),
            "enabled": row.enabled,
            "status": row.status,
            "definitionVersion": row.definition_version,
            "stateVersion": row.state_version,
            "cursor": row.cursor,
            "lastEvaluationAt": _ts(row.last_evaluation_at),
            "lastEvaluationStatus": row.last_evaluation_status,
            "inFlightEvaluationId": row.in_flight_evaluation_id,
            "pendingItems": row.pending_items,
        }
    )


def evaluation_json(row: Any, resolved: Mapping[str, Any]) -> dict[str, Any]:
    requests = []
    for r in json.loads(row.run_requests or "[]"):
        done = resolved.get(r["request_id"])
        requests.append(
            _drop_none(
                {
                    "requestId": r["request_id"],
                    "runKey": r["run_key"],
                    "status": "DROPPED"
                    if row.status == "SKIPPED_STALE"
                    else (done.outcome if done is not None else "PENDING"),
                    "runId": None if done is None else done.run_id,
                }
            )
        )
    return _drop_none(
        {
            "evaluationId": row.evaluation_id,
            "sensorId": row.sensor_id,
            "trigger": row.trigger,
            "expectedStateVersion": row.expected_state_version,
            "requestedAt": _ts(row.requested_at),
            "reportedAt": _ts(row.reported_at),
            "status": row.status,
            "reason": row.reason,
            "error": row.error,
            "cursorAfter": row.cursor_after,
            "items": json.loads(row.item_ids),
            "runRequests": requests if row.status != "SKIPPED_STALE" else [],
            "droppedRunRequests": row.dropped_run_requests,
        }
    )


def _log(tables: SensorTables, sensor_id: str) -> tuple[SensorLog, SensorView]:
    log = tables.log.sensors.get(sensor_id)
    view = tables.view(sensor_id)
    if log is None or log.definition is None or view is None:
        raise NotFound(f"sensor '{sensor_id}' not found")
    return log, view


def list_sensors(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> dict[str, Any]:
    tables = refresh_sensors(ctx, tenant_id, workspace_id)
    out = []
    for log in tables.logs():
        view = tables.view(log.sensor_id)
        if log.definition is not None and view is not None:
            out.append(sensor_json(log, view))
    return {"sensors": out}


def get_sensor(ctx: ServiceContext, tenant_id: str, workspace_id: str, sensor_id: str) -> dict[str, Any]:
    return sensor_json(*_log(refresh_sensors(ctx, tenant_id, workspace_id), sensor_id))


def set_sensor_enabled(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, sensor_id: str, enabled: bool
) -> dict[str, Any]:
    """Enable or disable; ``changed`` is false (and nothing is written) when it already was.

    Raises:
        NotFound: no such sensor.
        Conflict: removed by a deploy (``DEFINITION_REMOVED``), or the step kept being taken.
    """
    tables = refresh_sensors(ctx, tenant_id, workspace_id)
    for _ in range(_CAS_TRIES):
        _, view = _log(tables, sensor_id)
        if view.removed:
            raise Conflict(
                f"sensor '{sensor_id}' was removed by a deploy",
                details={"conflictType": "DEFINITION_REMOVED", "sensorId": sensor_id},
            )
        if view.enabled == enabled:
            return {
                "sensorId": sensor_id,
                "enabled": enabled,
                "stateVersion": view.state_version,
                "changed": False,
            }
        change = SensorStatusChanged(sensor_id, enabled, view.state_version + 1)
        names = append_made(ctx, tenant_id, workspace_id, [stamp(ctx, tenant_id, workspace_id, change)])
        tables = refresh_sensors(ctx, tenant_id, workspace_id, names)
        _, after = _log(tables, sensor_id)
        if after.state_version >= change.state_version and after.enabled == enabled:
            return {
                "sensorId": sensor_id,
                "enabled": enabled,
                "stateVersion": after.state_version,
                "changed": True,
            }
        # An evaluation took that step first: ours did not happen; claim the next one.
    raise Conflict(f"sensor '{sensor_id}' changed too often to apply the change; retry")


def _rfc3339(value: str, name: str) -> int:
    """Epoch ms of any RFC 3339 time (any offset, any fraction), or a 400 naming ``name``."""
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
        if parsed.tzinfo is None or "T" not in value.upper():
            raise ValueError
        return int(parsed.timestamp() * 1000)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{name} must be an RFC 3339 time, not {value!r}") from None


def _time_filter(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    return None if value is None else _rfc3339(value, name)


def list_evaluations(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, sensor_id: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """Evaluations newest first (by request time), filtered by ``status`` and ``since``/``until``, paged."""
    status = query.get("status")
    if status is not None and status not in EVALUATION_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(EVALUATION_STATUSES)}, not {status!r}")
    since, until = _time_filter(query, "since"), _time_filter(query, "until")
    limit = page_limit(query, DEFAULT_LIMIT, MAX_LIMIT)
    after = decode_cursor(query["cursor"]) if query.get("cursor") else None
    tables = refresh_sensors(ctx, tenant_id, workspace_id)
    _log(tables, sensor_id)  # a known sensor

    def at(row: Any) -> int:
        return int(row.requested_at if row.requested_at is not None else row.reported_at or 0)

    rows = [
        r
        for r in tables.evaluation_rows(sensor_id)
        if status in (None, r.status)
        and (since is None or at(r) >= since)
        and (until is None or at(r) <= until)
        and (after is None or (at(r), r.evaluation_id) < after)
    ]
    rows.sort(key=lambda r: (at(r), r.evaluation_id), reverse=True)
    resolved = refresh_schedules(ctx, tenant_id, workspace_id).requests
    body: dict[str, Any] = {"evaluations": [evaluation_json(r, resolved) for r in rows[:limit]]}
    if len(rows) > limit:
        last = rows[limit - 1]
        body["nextCursor"] = encode_cursor(at(last), last.evaluation_id)
    return body


def get_evaluation(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, sensor_id: str, evaluation_id: str
) -> dict[str, Any]:
    ref = parse_evaluation_id(evaluation_id)
    tables = refresh_sensors(ctx, tenant_id, workspace_id)
    _log(tables, sensor_id)  # a known sensor
    found = [r for r in tables.evaluation_rows(sensor_id) if r.evaluation_id == evaluation_id]
    if ref.sensor_id != sensor_id or not found:
        raise NotFound(f"evaluation '{evaluation_id}' of sensor '{sensor_id}' not found")
    return evaluation_json(found[0], refresh_schedules(ctx, tenant_id, workspace_id).requests)


# ---------------------------------------------------------------------------------------------- push


def _message(raw: object, *, id_required: bool) -> tuple[str | None, str, dict[str, str], str | None, int]:
    """(message id, base64 data, attributes, publish time, decoded size) of a Pub/Sub message.

    Raises:
        InvalidInput: no (or a bad) message id, data not base64, attributes not strings.
    """
    if not isinstance(raw, Mapping):
        raise InvalidInput("message must be an object")
    message_id = raw.get("messageId")
    if message_id is None and id_required:
        raise InvalidInput("message.messageId is required")
    if message_id is not None and (
        not isinstance(message_id, str) or not _MESSAGE_ID_RE.fullmatch(message_id)
    ):
        raise InvalidInput(f"message.messageId must match [A-Za-z0-9._-]{{1,128}}, not {message_id!r}")
    data = raw.get("data", "")
    if not isinstance(data, str):
        raise InvalidInput("message.data must be a base64 string")
    try:
        size = len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        raise InvalidInput("message.data is not valid base64") from None
    attributes = raw.get("attributes") or {}
    if (
        not isinstance(attributes, Mapping)
        or len(attributes) > MAX_ATTRIBUTES
        or not all(isinstance(v, str) for v in attributes.values())
    ):
        raise InvalidInput("message.attributes must map strings to strings (at most 100)")
    publish_time = raw.get("publishTime")
    if publish_time is not None:
        if not isinstance(publish_time, str):
            raise InvalidInput("message.publishTime must be an RFC 3339 string")
        _rfc3339(publish_time, "message.publishTime")
    return message_id, data, dict(attributes), publish_time, size


def check_push_principal(ctx: ServiceContext, headers: Mapping[str, str]) -> None:
    """Deployed, the push subscription's OIDC token must name the Servo push account (§6.2).

    Cloud Run has verified the token's signature and audience before the request arrives (the push
    account holds ``run.invoker``); what is left to check is whose token it is, because the gateway's
    and other invokers' tokens pass Cloud Run too. Locally the API's own auth applies.

    Raises:
        Unauthorized: no token, or another principal's.
    """
    expected = ctx.settings.push_service_account
    if not ctx.settings.on_gcp and expected is None:
        return
    auth = headers.get("authorization", "")
    token = auth[7:].strip() if auth.startswith("Bearer ") else ""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    except (IndexError, ValueError, binascii.Error):
        raise Unauthorized("push requests need the push subscription's OIDC token") from None
    if expected is None or not isinstance(payload, dict) or payload.get("email") != expected:
        raise Unauthorized("the push token's principal is not the Servo push account")


def receive_push(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, sensor_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Record one Pub/Sub push message (``{message: {messageId, data, attributes, publishTime}}``).

    Redelivery answers DUPLICATE and changes nothing; a disabled sensor's message is SKIPPED (never
    evaluated), one over 256 KiB FAILED; otherwise RECORDED, and the sensor is evaluated when due.

    Raises:
        InvalidInput: a bad envelope (nothing stored), or the sensor is not a push sensor (400).
        NotFound: unknown or removed sensor (404).
    """
    message_id, data, attributes, publish_time, size = _message(body.get("message"), id_required=True)
    assert message_id is not None
    # Only read until the message is recorded: a rejected or duplicate delivery writes nothing.
    tables = refresh_sensors(ctx, tenant_id, workspace_id, publish=False)
    log, view = _log(tables, sensor_id)
    if view.removed:
        raise NotFound(f"sensor '{sensor_id}' was removed")
    spec = spec_of(log)
    if spec is None or spec.kind != "PUSH":
        raise InvalidInput(f"sensor '{sensor_id}' is not a push sensor")
    if tables.knows_message(sensor_id, message_id):
        return {"messageId": message_id, "status": "DUPLICATE"}
    status = "FAILED" if size > MAX_MESSAGE_BYTES else "RECORDED" if view.enabled else "SKIPPED"
    received = SensorMessageReceived(
        sensor_id, message_id, "" if status == "FAILED" else data, attributes, status, publish_time
    )
    names = append_made(ctx, tenant_id, workspace_id, [stamp(ctx, tenant_id, workspace_id, received)])
    tables = refresh_sensors(ctx, tenant_id, workspace_id, names)
    first = tables.log.sensors[sensor_id].messages[message_id]
    if first.data != received:  # a concurrent delivery of the same message was recorded first
        return {"messageId": message_id, "status": "DUPLICATE"}
    _evaluate_now(ctx, tenant_id, workspace_id, sensor_id, tables)
    return {"messageId": message_id, "status": status}


def _evaluate_now(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, sensor_id: str, tables: SensorTables
) -> None:
    """Request the evaluation a new item made due at once (the sweep would, up to a minute later)."""
    log, _ = _log(tables, sensor_id)
    due = due_request(log, tables, ctx.clock_ms())
    if due is not None:
        spec, request = due
        request_evaluation(ctx, tenant_id, workspace_id, spec, tables, request)


# ---------------------------------------------------------------------------------------------- evaluate


def evaluate_sensor(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    sensor_id: str,
    body: Mapping[str, Any],
    idempotency_key: str | None,
) -> tuple[int, dict[str, Any]]:
    """A manual evaluation (``{}``, ``{message: {data, attributes}}`` for push, ``{runId}`` for run
    status), from the current state version, even while paused (warning) or in flight (§6.2).

    The Idempotency-Key names the evaluation (``{sensor}:manual:{key}``); without one a fresh id is used.

    Raises:
        InvalidInput: a bad body or key; a message for a non-push sensor, a runId for another kind.
        NotFound: unknown sensor.
    """
    unknown = sorted(set(body) - {"message", "runId"})
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(unknown)}")
    key = idempotency_key if idempotency_key is not None else ctx.new_id()
    evaluation_id = manual_evaluation_id(sensor_id, key)
    tables = refresh_sensors(ctx, tenant_id, workspace_id)
    log, view = _log(tables, sensor_id)
    if view.removed:
        raise NotFound(f"sensor '{sensor_id}' was removed")
    spec = spec_of(log)
    if spec is None:
        raise Conflict(f"sensor '{sensor_id}' has a definition this server cannot read")
    warning = None if view.enabled else PAUSED_WARNING
    if evaluation_id in log.requested:  # a repeated key: the same evaluation, as it stands now
        status = view.evaluations[evaluation_id].status
        return 202, _drop_none({"evaluationId": evaluation_id, "status": status, "warning": warning})
    items: tuple[str, ...] = ()
    if "message" in body:
        if spec.kind != "PUSH":
            raise InvalidInput(f"sensor '{sensor_id}' is not a push sensor: message is for push sensors")
        message_id, data, attributes, publish_time, size = _message(body["message"], id_required=False)
        if size > MAX_MESSAGE_BYTES:
            raise InvalidInput(f"message.data is {size} bytes; at most {MAX_MESSAGE_BYTES} (256 KiB)")
        message_id = message_id or f"manual.{key}"
        if message_id not in log.messages:
            received = SensorMessageReceived(
                sensor_id, message_id, data, attributes, "RECORDED", publish_time
            )
            names = append_made(ctx, tenant_id, workspace_id, [stamp(ctx, tenant_id, workspace_id, received)])
            tables = refresh_sensors(ctx, tenant_id, workspace_id, names)
        items = (f"msg:{message_id}",)
    elif "runId" in body:
        run_id = body["runId"]
        if spec.kind != "RUN_STATUS":
            raise InvalidInput(f"sensor '{sensor_id}' is not a run-status sensor: runId is for those")
        if not isinstance(run_id, str) or not _MESSAGE_ID_RE.fullmatch(run_id):
            raise InvalidInput(f"runId must be a run id, not {run_id!r}")
        items = (f"run:{run_id}",)
    now = ctx.clock_ms()
    request = SensorEvaluationRequested(sensor_id, evaluation_id, view.state_version, now, "MANUAL", items)
    request_evaluation(ctx, tenant_id, workspace_id, spec, tables, request)
    return 202, _drop_none({"evaluationId": evaluation_id, "status": "PENDING", "warning": warning})
