"""Side effects decided by the controller, carried out after a publish (design §5.6).

Each decision is idempotent by name: ledger events by their idempotency key, Cloud Tasks by their
deterministic ``d_``/``t_`` id (ALREADY_EXISTS counts as done). Running the same decisions twice —
the compactor after a publish and the sweep a minute later, or two racing instances — therefore
enqueues one task and records one acknowledgement.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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
    make_encoded_event,
)
from servo.core.ids import cloud_task_id
from servo.core.keys import encode_task_id
from servo.core.rows import TaskRow
from servo.core.state import RunPartition
from servo.core.states import TaskState
from servo.core.timefmt import format_timestamp
from servo.jsonlog import log_fields
from servo.services._io_pool import io_map
from servo.services.context import ServiceContext
from servo.services.ledger import append_made
from servo.services.upstream_outputs import outside_upstream_outputs
from servo.tokens import issue_task_token, min_ttl_for

logger = logging.getLogger("servo.effects")
WORKER_ID = "servo-controller"
_DISPATCHED_STATES = frozenset({TaskState.DISPATCHED.value, TaskState.RUNNING.value})


def dispatch_envelope(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    task: TaskRow,
    decision: ctl.EnqueueDispatch,
    traceparent: str | None,
    upstream: dict[str, Any],
    code_version: str | None = None,
    issued_ms: int | None = None,
) -> dict[str, Any]:
    """The worker's dispatch envelope (contracts §10), with a token scoped to this one attempt, issued
    at ``issued_ms`` (the attempt's dispatch time, ``_issue_time``; default now)."""
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
        issued_s=None if issued_ms is None else issued_ms // 1000,
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
    envelope["payload"] = _payload(task, upstream, code_version)
    return envelope


def _payload(task: TaskRow, upstream: dict[str, Any], code_version: str | None) -> dict[str, Any]:
    """Servo's envelope payload: the attempt's time bound, the upstream materializations' metadata,
    so a downstream asset sees what its inputs produced without calling the API, and the code version
    the run was planned with, which a worker must hold to run the task."""
    payload: dict[str, Any] = {}
    if code_version:
        payload["codeVersion"] = code_version
    if task.timeout_seconds:
        payload["timeoutSeconds"] = task.timeout_seconds
    if upstream:
        payload["upstream"] = upstream
    return payload


def upstreams_by_task(part: RunPartition) -> dict[str, list[str]]:
    """Each task's upstream keys. Built once per batch of decisions: scanning every edge of the run
    for each dispatch would be quadratic in a wide fan-out."""
    index: dict[str, list[str]] = {}
    for upstream, downstream in part.deps:
        index.setdefault(downstream, []).append(upstream)
    return index


def upstream_outputs(part: RunPartition, upstreams: Sequence[str]) -> dict[str, Any]:
    return {u: json.loads(part.tasks[u].output_json or "{}") for u in upstreams if u in part.tasks}


@dataclass(frozen=True, slots=True)
class _At:
    """Event data recorded as of ``at_ms``, not of its write (a dispatch: when its token was issued)."""

    data: Any
    at_ms: int


def _event(ctx: ServiceContext, tenant_id: str, workspace_id: str, data: Any) -> tuple[Event, bytes]:
    """The event recording ``data``, and its bytes (built once: the write takes them as they are)."""
    now = ctx.clock_ms()
    at = data.at_ms if isinstance(data, _At) else now
    return make_encoded_event(
        data.data if isinstance(data, _At) else data,
        event_id=ctx.ids.new(now),
        timestamp_ms=at,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
    )


def _issue_time(ctx: ServiceContext, task: TaskRow, attempt: int) -> int:
    """When ``attempt`` of ``task`` was dispatched: the row's time once it records this attempt's
    dispatch (a repair or a repeated request of it), else now.

    The token carries it as ``iat`` and DispatchRequested as its time (so ``TaskRow.dispatched_at``),
    from this one reading: the worker's report of the attempt (``dispatched_at`` = the token's ``iat``)
    and the sweep's forced end of it (``controller.forced_dispatched_at``, from the row) then carry the
    same dispatch time, and the asset catalog takes them for one attempt.
    """
    recorded = task.attempt == attempt and task.state in _DISPATCHED_STATES
    if recorded and task.dispatched_at is not None:
        return task.dispatched_at
    return ctx.clock_ms()


def _audience(url: str) -> str:
    """Cloud Run (and 2nd-gen functions) accept their run.app service URL as the ID token audience, no
    path; Terraform therefore hands out run.app URLs (infra: local.timers_url, the worker's uri)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _queue_name(queue: str, default: str) -> str:
    # contracts §5: the reference's "default-queue" means "the configured queue".
    return default if queue == "default-queue" else queue


def _http_task(ctx: ServiceContext, name: str, url: str, body: bytes, **extra: Any) -> Any:
    """A Cloud Task POSTing JSON to ``url``; with a tasks service account it carries an OIDC token."""
    from servo.dispatch import HttpTask

    sa = ctx.settings.tasks_service_account
    headers = {"Content-Type": "application/json", **extra.pop("headers", {})}
    return HttpTask(
        task_id=name,
        url=url,
        body=body,
        headers=headers,
        oidc_service_account=sa,
        oidc_audience=_audience(url) if sa else None,
        **extra,
    )


def _dispatch(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    part: RunPartition,
    d: ctl.EnqueueDispatch,
    upstreams: dict[str, list[str]],
    issued_ms: int | None = None,
) -> str:
    """Enqueue the worker's delivery of ``d``; returns its Cloud Task name."""
    traceparent = part.run.traceparent if part.run is not None else None
    # A repair gets a fresh name: the first Cloud Task may still be tombstoned under the old one.
    name = cloud_task_id(d.dispatch_id if d.repair_of is None else f"{d.dispatch_id}:repair:{d.repair_of}")
    task_row = part.tasks[d.task_key]
    issued_ms = _issue_time(ctx, task_row, d.attempt) if issued_ms is None else issued_ms
    # Upstreams outside the run get their last materialization's output; the run's own come last,
    # so a run never sees an older output of an upstream it materialized itself.
    outputs = outside_upstream_outputs(ctx, tenant_id, workspace_id, part, task_row)
    outputs.update(upstream_outputs(part, upstreams.get(d.task_key, ())))
    envelope = dispatch_envelope(
        ctx,
        tenant_id,
        workspace_id,
        task_row,
        d,
        traceparent,
        outputs,
        part.run.code_version if part.run is not None else None,
        issued_ms,
    )
    task = _http_task(
        ctx,
        name,
        ctx.settings.worker_url,
        json.dumps(envelope).encode(),
        headers=ctx.settings.internal_headers(),
        dispatch_deadline_s=ctx.settings.worker_dispatch_deadline_s,
    )
    _enqueue(ctx, d.worker_queue, task)
    return name


def _ack(d: ctl.EnqueueDispatch, name: str) -> DispatchEnqueued:
    return DispatchEnqueued(d.dispatch_id, name, d.run_id, d.task_key, d.attempt)


def _timer(ctx: ServiceContext, tenant_id: str, workspace_id: str, d: ctl.ScheduleTimer) -> list[Any]:
    name = cloud_task_id(d.timer_id)
    body = json.dumps({"tenantId": tenant_id, "workspaceId": workspace_id, "timerId": d.timer_id}).encode()
    task = _http_task(
        ctx,
        name,
        ctx.settings.timers_url,
        body,
        headers=ctx.settings.internal_headers(),
        schedule_time_ms=d.fire_at_ms,
        dispatch_deadline_s=60,
    )
    _enqueue(ctx, ctx.settings.timers_queue or "default-queue", task)
    # Wire timer types are snake_case (contracts §6); the controller speaks the Parquet enum.
    return [
        TimerRequested(d.timer_id, d.timer_type.lower(), d.fire_at_ms, d.run_id, d.task_key, d.attempt),
        TimerEnqueued(d.timer_id, name, d.run_id, d.task_key, d.attempt),
    ]


def _fail(d: ctl.FailAttempt) -> list[Any]:
    message = f"{d.code}: {d.message}"
    logger.warning(message, extra=log_fields(labels={"run_id": d.run_id, "task_key": d.task_key}))
    return [
        TaskFinished(
            run_id=d.run_id,
            task_key=d.task_key,
            attempt=d.attempt,
            attempt_id=d.attempt_id,
            worker_id=WORKER_ID,
            outcome=d.outcome.lower(),
            error_message=message,
            error={"category": d.category, "message": message, "retryable": d.retryable},
            error_category=d.category,
            asset_key=d.asset_key,
            partition_key=d.partition_key,
            code_version=d.code_version,
            dispatched_at=d.dispatched_at,
        )
    ]


# How long this instance remembers a dispatch or timer it requested, once carried out. On GCS the next
# publish can come before those requests are folded (its compaction listed before they were written),
# and the task shows READY again; requesting it again would enqueue under the same name (harmless) but
# append the same two events again. A request still being carried out is never made again by another
# pass of this instance, however long its pass takes (a wide fan-out's pass can take over a minute).
# Past this age a request that still shows unfolded is made again, so a lost write is repaired without
# the sweep.
RECENT_DECISION_TTL_MS = 60_000
_RECENT = "controller-recent-decisions"
# A wide pass works in chunks: each chunk's enqueues run concurrently, then its events are written, so
# the first requests reach the ledger (and the compactor) while the rest are still being enqueued, and
# carry ids from when they were written, not from the start of the pass.
CHUNK = 32


class _Recent:
    """Keys of decisions this instance is carrying out (None) or carried out (when); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: dict[str, int | None] = {}

    def claim(self, key: str, now_ms: int) -> bool:
        with self._lock:
            if key in self._at:
                at = self._at[key]
                if at is None or now_ms - at < RECENT_DECISION_TTL_MS:
                    return False
            self._at[key] = None
            if len(self._at) > 10_000:
                self._at = {
                    k: t for k, t in self._at.items() if t is None or now_ms - t < RECENT_DECISION_TTL_MS
                }
            return True

    def remember(self, keys: Sequence[str], now_ms: int) -> None:
        """Carried out at ``now_ms``: not requested again for RECENT_DECISION_TTL_MS from then."""
        with self._lock:
            self._at.update(dict.fromkeys(keys, now_ms))

    def carried_out(self, key: str) -> bool:
        """Whether this instance carried out the decision ``key`` (not only claimed it)."""
        with self._lock:
            return self._at.get(key) is not None

    def release(self, keys: Sequence[str]) -> None:
        """Not carried out: forgotten, so the next pass requests them again."""
        with self._lock:
            for key in keys:
                self._at.pop(key, None)

    @contextlib.contextmanager
    def claiming(
        self, decisions: Sequence[ctl.Decision], clock_ms: Callable[[], int]
    ) -> Iterator[list[ctl.Decision]]:
        """The decisions left to carry out. What they claimed is in flight until the block ends; it is
        remembered from then if the block succeeded, and released if it failed."""
        todo: list[ctl.Decision] = []
        claimed: list[str] = []
        now = clock_ms()
        for d in decisions:
            key = _memo_key(d)
            if key is not None:
                if not self.claim(key, now):
                    continue  # being requested, or requested moments ago, by this instance
                claimed.append(key)
            todo.append(d)
        try:
            yield todo
        except BaseException:
            self.release(claimed)
            raise
        self.remember(claimed, clock_ms())


def _memo_key(d: ctl.Decision) -> str | None:
    """The key under which a request is remembered; None for decisions that are not requests."""
    if isinstance(d, ctl.RequestDispatch):
        return f"dispatch:{d.dispatch_id}"
    if isinstance(d, ctl.EnqueueDispatch) and d.repair_of is None:
        return f"ack:{d.dispatch_id}"
    if isinstance(d, ctl.ScheduleTimer):
        return f"timer:{d.timer_id}"
    return None


def _execute(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    part: RunPartition,
    d: ctl.Decision,
    upstreams: dict[str, list[str]],
    recent: _Recent,
) -> list[Any]:
    """Carry out one decision; returns the events that record it."""
    if isinstance(d, ctl.RequestDispatch):
        # Enqueue first, then record request and acknowledgement in one write: one publish per
        # dispatch instead of two. A crash in between leaves the task READY; the next pass enqueues
        # the same name again (ALREADY_EXISTS) and records both. A worker calling back before the
        # write is published is recognised by its token (callbacks._as_dispatched).
        fields = (d.run_id, d.task_key, d.attempt, d.attempt_id, d.dispatch_id, d.worker_queue)
        at = _issue_time(ctx, part.tasks[d.task_key], d.attempt)
        enqueue = ctl.EnqueueDispatch(*fields)
        name = _dispatch(ctx, tenant_id, workspace_id, part, enqueue, upstreams, at)
        if ctx.settings.defer_dispatch_ack:
            # The request alone: its row stays PENDING, and the next pass that finds it so (the task
            # not started) acknowledges it below; a started task has made the acknowledgement moot.
            return [_At(DispatchRequested(*fields), at)]
        return [_At(DispatchRequested(*fields), at), _ack(enqueue, name)]
    if isinstance(d, ctl.EnqueueDispatch):
        if d.repair_of is None and recent.carried_out(f"dispatch:{d.dispatch_id}"):
            # This instance enqueued it before recording the request: only the acknowledgement is
            # missing. (After a restart the memory is gone, and the queue with it: enqueued again.)
            return [_ack(d, cloud_task_id(d.dispatch_id))]
        return [_ack(d, _dispatch(ctx, tenant_id, workspace_id, part, d, upstreams))]
    if isinstance(d, ctl.ScheduleTimer):
        return _timer(ctx, tenant_id, workspace_id, d)
    if isinstance(d, ctl.FailAttempt):
        return _fail(d)
    if isinstance(d, ctl.TimeOutRun):
        return [RunTimedOut(run_id=d.run_id, reason=d.reason)]
    return []


def carry_out(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    part: RunPartition,
    decisions: Sequence[ctl.Decision],
) -> int:
    """Execute decisions for one run; returns how many ledger events were appended."""
    return len(carried_out(ctx, tenant_id, workspace_id, part, decisions))


def carried_out(
    ctx: ServiceContext,
    tenant_id: str,
    workspace_id: str,
    part: RunPartition,
    decisions: Sequence[ctl.Decision],
) -> list[Event]:
    """``carry_out``, returning the ledger events appended (the callback dispatch remembers them)."""
    recent = ctx.instance_state(_RECENT, _Recent)
    with recent.claiming(decisions, ctx.clock_ms) as todo:
        dispatches = any(isinstance(d, ctl.RequestDispatch | ctl.EnqueueDispatch) for d in todo)
        upstreams = upstreams_by_task(part) if dispatches else {}
        appended: list[Event] = []
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            done = io_map(lambda d: _execute(ctx, tenant_id, workspace_id, part, d, upstreams, recent), chunk)
            data = [x for recorded in done for x in recorded]
            if data:
                # The controller acts again when the publish of these events changes the run; it never
                # reads them back in this pass, so it does not wait for that publish.
                made = [_event(ctx, tenant_id, workspace_id, x) for x in data]
                append_made(ctx, tenant_id, workspace_id, made, await_publish=False)
                appended += [event for event, _ in made]
        return appended


def _enqueue(ctx: ServiceContext, queue: str, task: Any) -> None:
    if ctx.queue is None:
        raise RuntimeError("no task queue configured for dispatch")
    ctx.queue.enqueue(_queue_name(queue, ctx.settings.queue), task)
