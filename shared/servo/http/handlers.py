"""Operation id → service call. Each handler decodes, calls one service, and says what to answer."""

from __future__ import annotations

from servo.core.errors import CallbackRejected, InvalidInput
from servo.http.app import Call, Handler, Result, parse_json_object
from servo.http.app import _tenant as tenant_of


def _deploy(call: Call) -> Result:
    from servo.services.manifests import deploy_manifest

    return deploy_manifest(
        call.ctx, call.tenant_id, call.params["ws"], call.body, call.header("idempotency-key")
    )


def _current_manifest(call: Call) -> Result:
    from servo.services.manifests import get_current_manifest

    return 200, get_current_manifest(call.ctx, call.tenant_id, call.params["ws"])


def _trigger(call: Call) -> Result:
    from servo.services.trigger import trigger_run

    return trigger_run(
        call.ctx,
        call.tenant_id,
        call.params["ws"],
        parse_json_object(call.body),
        idempotency_key=call.header("idempotency-key"),
        traceparent=call.header("traceparent"),
    )


def _rerun(call: Call) -> Result:
    from servo.services.rerun import rerun_run

    return rerun_run(
        call.ctx,
        call.tenant_id,
        call.params["ws"],
        call.params["run_id"],
        parse_json_object(call.body),
        traceparent=call.header("traceparent"),
    )


def _list_runs(call: Call) -> Result:
    from servo.services.runs import list_runs

    return 200, list_runs(call.ctx, call.tenant_id, call.params["ws"], call.query)


def _get_run(call: Call) -> Result:
    from servo.services.runs import get_run

    return 200, get_run(call.ctx, call.tenant_id, call.params["ws"], call.params["run_id"])


def _run_logs(call: Call) -> Result:
    from servo.services.runs import run_logs

    text, next_cursor = run_logs(
        call.ctx, call.tenant_id, call.params["ws"], call.params["run_id"], call.query
    )
    headers = {"X-Servo-Next-Cursor": next_cursor} if next_cursor else {}
    return 200, text, "text/plain; charset=utf-8", headers


def _cancel(call: Call) -> Result:
    from servo.services.cancel import cancel_run

    body = parse_json_object(call.body)
    return cancel_run(call.ctx, call.tenant_id, call.params["ws"], call.params["run_id"], body)


def _callback(action: str) -> Handler:
    def handler(call: Call) -> Result:
        from servo.services import callbacks

        service = {
            "started": callbacks.task_started,
            "heartbeat": callbacks.task_heartbeat,
            "completed": callbacks.task_completed,
            "logs": callbacks.upload_logs,
        }[action]
        try:
            body = parse_json_object(call.body)
        except InvalidInput as exc:
            # A worker reads every callback error in the worker-protocol shape, even for a broken body.
            raise CallbackRejected(400, "invalid_argument", exc.message) from None
        return 200, service(call.ctx, call.params["task_id"], call.headers, body)

    return handler


def _sweep(call: Call) -> Result:
    from servo.services.timers import sweep

    return 200, sweep(call.ctx, parse_json_object(call.body))


def _fire(call: Call) -> Result:
    from servo.services.timers import fire_timer

    return 200, fire_timer(call.ctx, parse_json_object(call.body))


def _no_options(call: Call) -> None:
    """Enable and disable take no body; a bad one is refused before anything is read or written."""
    if call.body.strip() and parse_json_object(call.body):
        raise InvalidInput("enable and disable take no options: send {} or nothing")


def _schedules(operation: str) -> Handler:
    def handler(call: Call) -> Result:
        from servo.services import schedules

        ws = call.params["ws"]
        sid = call.params.get("schedule_id", "")
        if operation in ("enableSchedule", "disableSchedule"):
            _no_options(call)
            enabled = operation == "enableSchedule"
            return 200, schedules.set_schedule_enabled(call.ctx, call.tenant_id, ws, sid, enabled)
        if operation == "listSchedules":
            return 200, schedules.list_schedules(call.ctx, call.tenant_id, ws)
        if operation == "getSchedule":
            return 200, schedules.get_schedule(call.ctx, call.tenant_id, ws, sid)
        if operation == "listScheduleTicks":
            return 200, schedules.list_ticks(call.ctx, call.tenant_id, ws, sid, call.query)
        return 200, schedules.get_tick(call.ctx, call.tenant_id, ws, sid, call.params["tick_id"])

    return handler


def _sensors(operation: str) -> Handler:
    def handler(call: Call) -> Result:
        from servo.services import sensors

        ws = call.params["ws"]
        sid = call.params.get("sensor_id", "")
        if operation in ("enableSensor", "disableSensor"):
            _no_options(call)
            enabled = operation == "enableSensor"
            return 200, sensors.set_sensor_enabled(call.ctx, call.tenant_id, ws, sid, enabled)
        if operation == "listSensors":
            return 200, sensors.list_sensors(call.ctx, call.tenant_id, ws)
        if operation == "getSensor":
            return 200, sensors.get_sensor(call.ctx, call.tenant_id, ws, sid)
        if operation == "listSensorEvaluations":
            return 200, sensors.list_evaluations(call.ctx, call.tenant_id, ws, sid, call.query)
        if operation == "getSensorEvaluation":
            return 200, sensors.get_evaluation(
                call.ctx, call.tenant_id, ws, sid, call.params["evaluation_id"]
            )
        if operation == "evaluateSensor":
            body = parse_json_object(call.body) if call.body.strip() else {}
            key = call.header("idempotency-key")
            return sensors.evaluate_sensor(call.ctx, call.tenant_id, ws, sid, body, key)
        # pushSensorMessage: Pub/Sub names the tenant in the subscription's URL, not in a header.
        sensors.check_push_principal(call.ctx, call.headers)
        tenant = tenant_of(call.query.get("tenant") or call.tenant_id, call.ctx.settings)
        return 200, sensors.receive_push(call.ctx, tenant, ws, sid, parse_json_object(call.body))

    return handler


def _assets(operation: str) -> Handler:
    def handler(call: Call) -> Result:
        from servo.services import assets

        ws, key = call.params["ws"], call.params.get("asset_key", "")
        if operation == "listAssets":
            return 200, assets.list_assets(call.ctx, call.tenant_id, ws, call.query)
        if operation == "getAsset":
            return 200, assets.get_asset(call.ctx, call.tenant_id, ws, key, call.query)
        return 200, assets.list_asset_partitions(call.ctx, call.tenant_id, ws, key, call.query)

    return handler


def _backfills(operation: str) -> Handler:
    def handler(call: Call) -> Result:
        from servo.services import backfills

        ws, bf = call.params["ws"], call.params.get("backfill_id", "")
        key = call.header("idempotency-key")
        reads = operation.startswith(("list", "get"))
        body = parse_json_object(call.body) if not reads and call.body.strip() else {}
        if operation == "createBackfill":
            return backfills.create_backfill(call.ctx, call.tenant_id, ws, body, key)
        if operation == "retryFailedBackfill":
            return backfills.retry_failed(call.ctx, call.tenant_id, ws, bf, body, key)
        if operation.endswith("Backfill") and operation[:-8] in ("pause", "resume", "cancel"):
            return backfills.move_backfill(call.ctx, call.tenant_id, ws, bf, operation[:-8], body)
        if operation == "listBackfills":
            return 200, backfills.list_backfills(call.ctx, call.tenant_id, ws, call.query)
        if operation == "getBackfill":
            return 200, backfills.get_backfill(call.ctx, call.tenant_id, ws, bf)
        return 200, backfills.list_chunks(call.ctx, call.tenant_id, ws, bf, call.query)

    return handler


def _sensor_result(call: Call) -> Result:
    from servo.services.sensor_results import report_result

    try:
        body = parse_json_object(call.body)
    except InvalidInput as exc:
        # A worker reads every result error in the worker-protocol shape, even for a broken body.
        raise CallbackRejected(400, "invalid_argument", exc.message) from None
    return 200, report_result(call.ctx, call.params["evaluation_id"], call.headers, body)


HANDLERS: dict[str, Handler] = {
    "deployManifest": _deploy,
    "getCurrentManifest": _current_manifest,
    "triggerRun": _trigger,
    "listRuns": _list_runs,
    "getRun": _get_run,
    "getRunLogs": _run_logs,
    "cancelRun": _cancel,
    "rerunRun": _rerun,
    "sweepTimers": _sweep,
    "fireTimer": _fire,
    **{
        f"task{action.title()}{suffix}": _callback(action)
        for action in ("started", "heartbeat", "completed", "logs")
        for suffix in ("", "Compat")
    },
    **{
        op: _schedules(op)
        for op in (
            "listSchedules",
            "getSchedule",
            "enableSchedule",
            "disableSchedule",
            "listScheduleTicks",
            "getScheduleTick",
        )
    },
    **{
        op: _sensors(op)
        for op in (
            "listSensors",
            "getSensor",
            "enableSensor",
            "disableSensor",
            "listSensorEvaluations",
            "getSensorEvaluation",
            "evaluateSensor",
            "pushSensorMessage",
        )
    },
    "reportSensorEvaluation": _sensor_result,
    **{
        op: _backfills(op)
        for op in (
            "createBackfill",
            "listBackfills",
            "getBackfill",
            "listBackfillChunks",
            "pauseBackfill",
            "resumeBackfill",
            "cancelBackfill",
            "retryFailedBackfill",
        )
    },
    **{op: _assets(op) for op in ("listAssets", "getAsset", "listAssetPartitions")},
}
