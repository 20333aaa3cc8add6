"""The sensors step of the timers sweep (automation §6.2): request due evaluations and hand each to the
worker as a Cloud Task, add run-status items, and submit the run requests of applied evaluations. The
compactor's act phase does the same after commit for the sensors whose events it folded
(``act_after_commit``), requesting the next evaluation ahead for its ``not_before``; the sweep repairs.

Every id derives from the sensor's state (``{id}:v{version}:{attempt}``, task ``s_…``), so a repeated,
concurrent or crashed sweep writes the same ``sensor_eval_req:`` key and enqueues the same task name (a
name that exists already is success). An evaluation requested but never enqueued (a crash between the
two) is enqueued again by the next sweep while it is in flight.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from servo.core.errors import InvalidSchedule
from servo.core.events import SensorEvaluationRequested
from servo.core.sensor_fold import SensorLog, SensorView, next_evaluation
from servo.core.sensor_rows import SensorRunItemRow, SensorTables, in_flight
from servo.core.sensors import SensorSpec, evaluation_task_name, parse_sensor
from servo.core.states import is_terminal_public
from servo.services import _compaction_ledger as ledger
from servo.services.context import ServiceContext
from servo.services.ledger import append_made, stamp
from servo.services.run_requests import resolve_run_request
from servo.services.schedule_projection import refresh_schedules
from servo.services.sensor_projection import has_sensor_state, refresh_sensors
from servo.services.sensor_run_scan import ScanPage, save_scan, scan_ended_runs
from servo.tokens import issue_evaluation_token

logger = logging.getLogger("servo.sensors")


def spec_of(log: SensorLog) -> SensorSpec | None:
    definition = log.definition_json()
    if definition is None:
        return None
    try:
        return parse_sensor(definition)
    except InvalidSchedule:
        return None  # a stored definition this runtime cannot read: it is never evaluated


# ---------------------------------------------------------------------------------------------- items


def _message_item(log: SensorLog, item_id: str) -> dict[str, Any] | None:
    seen = log.messages.get(item_id.partition(":")[2])
    if seen is None:
        return None
    m = seen.data
    message = {"messageId": m.message_id, "data": m.data_b64, "attributes": dict(m.attributes)}
    if m.publish_time is not None:
        message["publishTime"] = m.publish_time
    return {"itemId": item_id, "message": message}


def _run_item(ctx: ServiceContext, tenant_id: str, workspace_id: str, item_id: str) -> dict[str, Any]:
    from servo.services.runs import load_run

    run_id = item_id.partition(":")[2]
    found = load_run(ctx, tenant_id, workspace_id, run_id)
    run: dict[str, Any] = {"runId": run_id}
    if found is not None and found.run is not None:
        row = found.run
        run |= {
            "state": ctx.snapshot(tenant_id, workspace_id).public_state(row),
            "labels": json.loads(row.labels or "{}"),
            "selection": sorted(found.tasks),
            "failedTasks": sorted(k for k, t in found.tasks.items() if t.state == "FAILED"),
        }
    return {"itemId": item_id, "run": run}


def evaluation_items(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, log: SensorLog, item_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """What the worker hands the sensor per item: the push message or the watched run."""
    out = []
    for item_id in item_ids:
        if item_id.startswith("msg:"):
            item = _message_item(log, item_id)
            if item is not None:
                out.append(item)
        elif item_id.startswith("run:"):
            out.append(_run_item(ctx, tenant_id, workspace_id, item_id))
    return out


# ---------------------------------------------------------------------------------------------- tasks


def sensor_worker_url(worker_url: str) -> str:
    """The worker's evaluation route beside its ``/dispatch``."""
    base = worker_url[: -len("/dispatch")] if worker_url.endswith("/dispatch") else worker_url.rstrip("/")
    return f"{base}/sensor-evaluations"


def enqueue_evaluation(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    spec: SensorSpec,
    log: SensorLog,
    view: SensorView,
    request: SensorEvaluationRequested,
) -> None:
    """The Cloud Task ``s_…`` of one requested evaluation, for its ``not_before``; an existing name is
    success (the task is, or was, in the queue)."""
    from servo.services.effects import _enqueue, _http_task

    now = ctx.clock_ms()
    wait_s = max(0, (request.not_before - now) // 1000)
    token = issue_evaluation_token(
        ctx.settings.token_secret,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
        sensor_id=spec.sensor_id,
        evaluation_id=request.evaluation_id,
        state_version=request.expected_state_version,
        now_s=now // 1000,
        timeout_s=spec.timeout_seconds + wait_s,
    )
    envelope: dict[str, Any] = {
        "tenantId": tenant_id,
        "workspaceId": workspace_id,
        "sensorId": spec.sensor_id,
        "evaluationId": request.evaluation_id,
        "expectedStateVersion": request.expected_state_version,
        "trigger": request.trigger,
        "cursor": view.cursor,
        "items": evaluation_items(ctx, tenant_id, workspace_id, log, request.item_ids),
        "callbackBaseUrl": ctx.settings.api_url,
        "evaluationToken": token,
        "timeoutSeconds": spec.timeout_seconds,
    }
    if view.last_evaluation_at is not None:
        envelope["lastEvaluationAt"] = view.last_evaluation_at
    task = _http_task(
        ctx,
        evaluation_task_name(request.evaluation_id),
        sensor_worker_url(ctx.settings.worker_url),
        json.dumps(envelope).encode(),
        headers=ctx.settings.internal_headers(),
        schedule_time_ms=request.not_before if request.not_before > now else None,
        dispatch_deadline_s=spec.timeout_seconds + 60,
    )
    _enqueue(ctx, ctx.settings.sensors_queue or "default-queue", task)


def request_evaluation(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    spec: SensorSpec,
    tables: SensorTables,
    request: SensorEvaluationRequested,
) -> SensorTables:
    """Append the request, refresh, then enqueue its task (in this order: a task never runs for an
    evaluation the ledger does not hold). The task carries the request the ledger keeps for that id
    (the first): the sweep and the compactor may both have appended one from the same state."""
    names = append_made(ctx, tenant_id, workspace_id, [stamp(ctx, tenant_id, workspace_id, request)])
    tables = refresh_sensors(ctx, tenant_id, workspace_id, names)
    log = tables.log.sensors[spec.sensor_id]
    view = tables.view(spec.sensor_id)
    assert view is not None
    kept = log.requested.get(request.evaluation_id)
    enqueue_evaluation(ctx, tenant_id, workspace_id, spec, log, view, request if kept is None else kept.data)
    return tables


def due_request(
    log: SensorLog, tables: SensorTables, now_ms: int, *, ahead: bool = False
) -> tuple[SensorSpec, SensorEvaluationRequested] | None:
    """The sensor's next scheduled evaluation due now, or with ``ahead`` due within its interval (for
    a task that waits for ``not_before``); None when none is (paused, removed, one in flight)."""
    spec = spec_of(log)
    view = tables.view(log.sensor_id)
    if spec is None or view is None:
        return None
    plan = next_evaluation(
        view,
        spec,
        now_ms=now_ms,
        first_seen_at_ms=log.first_seen_at or now_ms,
        lookahead_ms=spec.minimum_interval_seconds * 1000 if ahead else 0,
    )
    if plan is None:
        return None
    request = SensorEvaluationRequested(
        spec.sensor_id,
        plan.evaluation_id,
        plan.expected_state_version,
        plan.not_before,
        plan.trigger,
        plan.item_ids,
    )
    return spec, request


def request_next_evaluations(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, tables: SensorTables, sensor_ids: Iterable[str]
) -> SensorTables:
    """After commit (§6.2): request each sensor's next evaluation now, for its ``not_before`` (a POLL
    one interval after its last evaluation), rather than when a sweep finds it due. Its id is the one
    the sweep would take, so whichever of the two comes second writes the same key and task name.

    Only from a settled step: the task carries the cursor of the result that took it, and a rival's
    result may still land first (``_settled``); the sweep requests that rare one once it is due."""
    for sensor_id in sorted(set(sensor_ids)):
        log = tables.log.sensors.get(sensor_id)
        view = tables.view(sensor_id)
        if log is None or view is None or not _step_settled(view, ctx.clock_ms()):
            continue
        due = due_request(log, tables, ctx.clock_ms(), ahead=True)
        if due is not None:
            spec, request = due
            tables = request_evaluation(ctx, tenant_id, workspace_id, spec, tables, request)
    return tables


# ---------------------------------------------------------------------------------------------- run items


def find_run_items(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, tables: SensorTables
) -> tuple[list[SensorRunItemRow], ScanPage | None]:
    """``run:{run_id}`` items of the enabled run-status sensors that watch a run that ended after the
    sensor was first seen (§6.2), from the next pages of the run scan (``sensor_run_scan``), and that
    page (to keep once the items are published); ordered by when the run ended."""
    watchers = []
    for log in tables.logs():
        spec = spec_of(log)
        view = tables.view(log.sensor_id)
        if (
            spec is not None
            and spec.kind == "RUN_STATUS"
            and view is not None
            and view.enabled
            and not view.removed
        ):
            watchers.append((spec, log))
    if not watchers:
        return [], None
    snapshot = ctx.snapshot(tenant_id, workspace_id)
    store = ctx.workspace_store(tenant_id, workspace_id)
    first_seen = [log.first_seen_at or 0 for _, log in watchers]
    page = scan_ended_runs(store, snapshot, ctx.clock_ms(), first_seen)
    items = []
    for run in page.runs:
        assert run.completed_at is not None
        state = snapshot.public_state(run)
        item_id = f"run:{run.run_id}"
        arrived = _ended_id(run.completed_at, run.run_id)  # the item's place: the run's end
        # Only watchers that may take this run and do not hold it yet: a run already an item of every
        # watcher costs no read, and its tasks are read only for a watcher of some assets. A run that
        # ended before the sensor's checkpoint is no new item: its item was let go with it.
        open_ = [
            (spec, log)
            for spec, log in watchers
            if (spec.sensor_id, item_id) not in tables.run_items
            and run.completed_at >= (log.first_seen_at or 0)
            and arrived >= log.base.boundary
            and state in (spec.run_status or ())
        ]
        if not open_ or not is_terminal_public(state):
            continue
        touched: list[str] = []
        if any(spec.monitored_assets is not None for spec, _ in open_):
            found = snapshot.get_run(run.run_id)
            touched = [t.task_key for t in found.tasks] if found is not None else []
        for spec, _log in open_:
            if spec.watches(state, touched):
                items.append(SensorRunItemRow(spec.sensor_id, item_id, run.run_id, state, arrived))
    return items, page


def _ended_id(completed_at: int, run_id: str) -> str:
    from servo.services._compaction_ledger import ulid_floor

    return ulid_floor(completed_at) + run_id[10:]


# ---------------------------------------------------------------------------------------------- requests


def _settled(view: SensorView, evaluation_id: str, now_ms: int) -> bool:
    """Whether an applied evaluation stays applied: no other evaluation of its version still awaits a
    result, or its own result is older than the window in which a write lands. (A competitor's result
    with a smaller event id could otherwise still appear and take the step, making this one stale after
    its runs started; P2, P13.)"""
    mine = view.evaluations[evaluation_id]
    rivals = [
        e
        for e in view.evaluations.values()
        if e.evaluation_id != evaluation_id
        and e.expected_state_version == mine.expected_state_version
        and e.status == "PENDING"
    ]
    return not rivals or (mine.reported_at or 0) < now_ms - ledger.DEFAULT_LOOKBACK_MS


def _step_settled(view: SensorView, now_ms: int) -> bool:
    """Whether the evaluation that took the sensor to its current version stays the one that did."""
    version = view.state_version - 1
    taken = [
        e.evaluation_id
        for e in view.evaluations.values()
        if e.expected_state_version == version and e.status in ("TRIGGERED", "SKIPPED")
    ]
    return all(_settled(view, evaluation_id, now_ms) for evaluation_id in taken)


def pending_sensor_requests(
    tables: SensorTables, resolved: Mapping[str, Any], now_ms: int
) -> list[tuple[str, dict[str, Any]]]:
    """(evaluation id, request) of settled applied evaluations' requests without an outcome, oldest first.

    An outcome counts from either projection: the sensor's own keeps it as long as the evaluation (the
    schedules' ``run_requests`` may have let it go first, after 30 days)."""
    out = []
    for log in tables.logs():
        view = tables.view(log.sensor_id)
        for request_id, request in sorted(view.run_requests.items() if view is not None else ()):
            evaluation = request_id.removeprefix("eval:").rsplit(":", 1)[0]
            known = request_id in resolved or request_id in log.resolved
            if not known and view is not None and _settled(view, evaluation, now_ms):
                out.append((evaluation, request))
    return out


def submit_pending_sensor_requests(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, tables: SensorTables
) -> list[str]:
    """Submit every applied evaluation's request that has no outcome yet (§6.3); the outcomes go to the
    ``run_requests`` table. Returns the ledger names written."""
    schedules = refresh_schedules(ctx, tenant_id, workspace_id)
    events = []
    for evaluation, request in pending_sensor_requests(tables, schedules.requests, ctx.clock_ms()):
        sensor_id = evaluation.split(":", 1)[0]
        trigger = {"type": "sensor", "sensor_id": sensor_id, "evaluation_id": evaluation}
        resolved = resolve_run_request(ctx, tenant_id, workspace_id, request, trigger)
        events.append(stamp(ctx, tenant_id, workspace_id, resolved))
    if not events:
        return []
    names = append_made(ctx, tenant_id, workspace_id, events)
    refresh_schedules(ctx, tenant_id, workspace_id, names)
    return names


def act_after_commit(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, names: Sequence[str], sensor_ids: Iterable[str]
) -> list[str]:
    """The compactor's act phase for recorded sensor events: publish the sensor state with these ledger
    objects, submit what is applied and settled (§6.3), then request these sensors' next evaluations
    (§6.2). The sweep repairs a crash anywhere in between: the run key's reservation makes a second
    submission of a request the same run, and an evaluation's id and task name derive from the state."""
    tables = refresh_sensors(ctx, tenant_id, workspace_id, names, lookback_ms=ledger.DEFAULT_LOOKBACK_MS)
    submitted = submit_pending_sensor_requests(ctx, tenant_id, workspace_id, tables)
    request_next_evaluations(ctx, tenant_id, workspace_id, tables, sensor_ids)
    return submitted


# ---------------------------------------------------------------------------------------------- sweep


def sweep_sensors(ctx: ServiceContext, tenant_id: str, workspace_id: str) -> dict[str, int]:
    """Request every due evaluation of one workspace, re-enqueue in-flight ones, submit pending run
    requests (evaluations, runRequests)."""
    if not has_sensor_state(ctx, tenant_id, workspace_id):
        return {"evaluations": 0, "runRequests": 0}  # never had a sensor: one read, nothing at rest
    tables = refresh_sensors(ctx, tenant_id, workspace_id)
    items, page = find_run_items(ctx, tenant_id, workspace_id, tables)
    if items:
        tables = refresh_sensors(ctx, tenant_id, workspace_id, run_items=items)
    if page is not None:  # only once its items are published: a crash before rescans, never skips
        save_scan(ctx.workspace_store(tenant_id, workspace_id), page)
    requested = 0
    for log in tables.logs():
        due = due_request(log, tables, ctx.clock_ms())
        if due is not None:
            spec, request = due
            tables = request_evaluation(ctx, tenant_id, workspace_id, spec, tables, request)
            requested += 1
            continue
        known = spec_of(log)
        view = tables.view(log.sensor_id)
        flying = None if view is None else in_flight(view)
        if known is not None and view is not None and flying is not None:
            asked = log.requested.get(flying)  # repair: a crash may have come between request and task
            if asked is not None:
                enqueue_evaluation(ctx, tenant_id, workspace_id, known, log, view, asked.data)
    submitted = submit_pending_sensor_requests(ctx, tenant_id, workspace_id, tables)
    return {"evaluations": requested, "runRequests": len(submitted)}
