"""Side effects decided by the controller, carried out after a publish (design §5.6).

Each decision is idempotent by name: ledger events by their idempotency key, Cloud Tasks by their
deterministic ``d_``/``t_`` id (ALREADY_EXISTS counts as done). Running the same decisions twice —
the compactor after a publish and the sweep a minute later, or two racing instances — therefore
enqueues one task and records one acknowledgement.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from servo.core import controller as ctl
from servo.core.events import (
    DispatchEnqueued,
    DispatchRequested,
    Event,
    RunTimedOut,
    TaskFinished,
    TimerEnqueued,
    TimerRequested,
    make_event,
)
from servo.core.ids import cloud_task_id
from servo.core.keys import encode_task_id
from servo.core.rows import TaskRow
from servo.core.state import RunPartition
from servo.core.timefmt import format_timestamp
from servo.http.jsonlog import log_fields
from servo.http.tokens import issue_task_token, min_ttl_for
from servo.services.context import ServiceContext
from servo.services.ledger import append_events

logger = logging.getLogger("servo.effects")
WORKER_ID = "servo-controller"


def dispatch_envelope(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    task: TaskRow,
    decision: ctl.EnqueueDispatch,
    traceparent: str | None,
    upstream: dict[str, Any],
) -> dict[str, Any]:
    """The worker's dispatch envelope (contracts §10), with a token scoped to this one attempt."""
    now_s = ctx.clock_ms() // 1000
    task_id = encode_task_id(task.run_id, task.task_key)
    token, expires_at = issue_task_token(
        ctx.settings.token_secret,
        task_id=task_id,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
        run_id=task.run_id,
        attempt=decision.attempt,
        attempt_id=decision.attempt_id,
        now_s=now_s,
        ttl_s=max(3600, min_ttl_for(task.timeout_seconds)),
        timeout_s=task.timeout_seconds,
    )
    envelope: dict[str, Any] = {
        "tenantId": tenant_id,
        "workspaceId": workspace_id,
        "taskId": task_id,
        "taskKey": task.task_key,
        "runId": task.run_id,
        "attempt": decision.attempt,
        "attemptId": decision.attempt_id,
        "dispatchId": decision.dispatch_id,
    }
    if task.partition_key:
        envelope["partitionKey"] = task.partition_key
    envelope["heartbeatTimeoutSec"] = task.heartbeat_timeout_sec
    envelope["workerQueue"] = decision.worker_queue
    envelope["callbackBaseUrl"] = ctx.settings.api_url
    envelope["taskToken"] = token
    envelope["tokenExpiresAt"] = format_timestamp(expires_at * 1000)
    if traceparent:
        envelope["traceparent"] = traceparent
    envelope["payload"] = _payload(task, upstream)
    return envelope


def _payload(task: TaskRow, upstream: dict[str, Any]) -> dict[str, Any]:
    """Servo's envelope payload: the attempt's time bound and the upstream materializations' metadata,
    so a downstream asset sees what its inputs produced without calling the API."""
    payload: dict[str, Any] = {}
    if task.timeout_seconds:
        payload["timeoutSeconds"] = task.timeout_seconds
    if upstream:
        payload["upstream"] = upstream
    return payload


def upstream_outputs(part: RunPartition, task_key: str) -> dict[str, Any]:
    return {
        d.upstream_task_key: json.loads(part.tasks[d.upstream_task_key].output_json or "{}")
        for d in part.deps.values()
        if d.downstream_task_key == task_key and d.upstream_task_key in part.tasks
    }


def _event(ctx: ServiceContext, tenant_id: str, workspace_id: str, data: Any) -> Event:
    now = ctx.clock_ms()
    return make_event(
        data, event_id=ctx.ids.new(now), timestamp_ms=now, tenant_id=tenant_id, workspace_id=workspace_id
    )


def _audience(url: str) -> str:
    """Cloud Run (and 2nd-gen functions) expect the service URL as the ID token audience, no path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _queue_name(queue: str, default: str) -> str:
    # contracts §5: the reference's "default-queue" means "the configured queue".
    return default if queue == "default-queue" else queue


def carry_out(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    part: RunPartition,
    decisions: Sequence[ctl.Decision],
) -> int:
    """Execute decisions for one run; returns how many ledger events were appended."""
    from servo.dispatch import HttpTask

    events: list[Event] = []
    traceparent = part.run.traceparent if part.run is not None else None
    for d in decisions:
        if isinstance(d, ctl.RequestDispatch):
            events.append(
                _event(
                    ctx,
                    tenant_id,
                    workspace_id,
                    DispatchRequested(
                        run_id=d.run_id,
                        task_key=d.task_key,
                        attempt=d.attempt,
                        attempt_id=d.attempt_id,
                        dispatch_id=d.dispatch_id,
                        worker_queue=d.worker_queue,
                    ),
                )
            )
        elif isinstance(d, ctl.EnqueueDispatch):
            task = part.tasks[d.task_key]
            # A repair gets a fresh name: the first Cloud Task may still be tombstoned under the old one.
            name = cloud_task_id(
                d.dispatch_id if d.repair_of is None else f"{d.dispatch_id}:repair:{d.repair_of}"
            )
            body = json.dumps(
                dispatch_envelope(
                    ctx, tenant_id, workspace_id, task, d, traceparent, upstream_outputs(part, d.task_key)
                )
            ).encode()
            _enqueue(
                ctx,
                d.worker_queue,
                HttpTask(
                    task_id=name,
                    url=ctx.settings.worker_url,
                    body=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Servo-Dispatch-Secret": ctx.settings.dispatch_secret,
                    },
                    schedule_time_ms=None,
                    oidc_service_account=ctx.settings.tasks_service_account,
                    oidc_audience=_audience(ctx.settings.worker_url)
                    if ctx.settings.tasks_service_account
                    else None,
                    dispatch_deadline_s=1800,
                ),
            )
            events.append(
                _event(
                    ctx,
                    tenant_id,
                    workspace_id,
                    DispatchEnqueued(
                        dispatch_id=d.dispatch_id,
                        cloud_task_id=name,
                        run_id=d.run_id,
                        task_key=d.task_key,
                        attempt=d.attempt,
                    ),
                )
            )
        elif isinstance(d, ctl.ScheduleTimer):
            name = cloud_task_id(d.timer_id)
            body = json.dumps(
                {"tenantId": tenant_id, "workspaceId": workspace_id, "timerId": d.timer_id}
            ).encode()
            _enqueue(
                ctx,
                "default-queue",
                HttpTask(
                    task_id=name,
                    url=ctx.settings.timers_url,
                    body=body,
                    headers={"Content-Type": "application/json"},
                    schedule_time_ms=d.fire_at_ms,
                    oidc_service_account=ctx.settings.tasks_service_account,
                    oidc_audience=_audience(ctx.settings.timers_url)
                    if ctx.settings.tasks_service_account
                    else None,
                    dispatch_deadline_s=60,
                ),
            )
            events.append(
                _event(
                    ctx,
                    tenant_id,
                    workspace_id,
                    TimerRequested(
                        timer_id=d.timer_id,
                        timer_type=d.timer_type.lower(),
                        fire_at=d.fire_at_ms,
                        run_id=d.run_id,
                        task_key=d.task_key,
                        attempt=d.attempt,
                    ),
                )
            )
            events.append(
                _event(
                    ctx,
                    tenant_id,
                    workspace_id,
                    TimerEnqueued(
                        timer_id=d.timer_id,
                        cloud_task_id=name,
                        run_id=d.run_id,
                        task_key=d.task_key,
                        attempt=d.attempt,
                    ),
                )
            )
        elif isinstance(d, ctl.FailAttempt):
            message = f"{d.code}: {d.message}"
            error = {"category": d.category, "message": message, "retryable": d.retryable}
            events.append(
                _event(
                    ctx,
                    tenant_id,
                    workspace_id,
                    TaskFinished(
                        run_id=d.run_id,
                        task_key=d.task_key,
                        attempt=d.attempt,
                        attempt_id=d.attempt_id,
                        worker_id=WORKER_ID,
                        outcome=d.outcome.lower(),
                        error_message=message,
                        error=error,
                        error_category=d.category,
                    ),
                )
            )
            logger.warning(
                error["message"], extra=log_fields(labels={"run_id": d.run_id, "task_key": d.task_key})
            )
        elif isinstance(d, ctl.TimeOutRun):
            events.append(_event(ctx, tenant_id, workspace_id, RunTimedOut(run_id=d.run_id, reason=d.reason)))
    if events:
        append_events(ctx, tenant_id, workspace_id, events)
    return len(events)


def _enqueue(ctx: ServiceContext, queue: str, task: Any) -> None:
    if ctx.queue is None:
        raise RuntimeError("no task queue configured for dispatch")
    ctx.queue.enqueue(_queue_name(queue, ctx.settings.queue), task)
