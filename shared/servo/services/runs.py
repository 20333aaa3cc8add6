"""GetRun, ListRuns and run logs: read-only, over the published projection and the log objects.

Readers never list or read the ledger (design §5.5): everything here goes head → manifest → Parquet
through the read model, or lists ``logs/``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from servo.core.errors import InvalidInput, NotFound
from servo.core.ids import validate_path_component
from servo.core.partition_keys import partition_values
from servo.core.reruns import rerun_fields
from servo.core.rows import DepRow, RunRow, TaskRow
from servo.core.run_source import trigger_view
from servo.core.states import TaskState, public_run_state, public_task_state
from servo.core.timefmt import format_timestamp
from servo.services.context import ServiceContext

MAX_LOG_PAGE_BYTES = 8 * 1024 * 1024
PUBLIC_RUN_STATES = ("PENDING", "RUNNING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")


@dataclass(frozen=True, slots=True)
class RunView:
    run: RunRow | None
    tasks: Mapping[str, TaskRow] = field(default_factory=dict)
    deps: tuple[DepRow, ...] = ()


def load_run(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, run_id: str, *, max_age_ms: int = 0
) -> RunView | None:
    ctx.settle(tenant_id, workspace_id)
    found = ctx.snapshot(tenant_id, workspace_id, max_age_ms=max_age_ms).get_run(run_id)
    if found is None or found.run is None:
        return None
    return RunView(found.run, {t.task_key: t for t in found.tasks}, tuple(found.deps))


def public_run_state_of(ctx: ServiceContext, tenant_id: str, workspace_id: str, run_id: str) -> str | None:
    view = load_run(ctx, tenant_id, workspace_id, run_id)
    if view is None or view.run is None:
        return None
    return public_run_state(view.run, view.tasks.values())


def _ts(ms: int | None) -> str | None:
    return format_timestamp(ms) if ms is not None else None


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _skip_attribution(task: TaskRow, deps: tuple[DepRow, ...]) -> dict[str, str] | None:
    """The earliest non-success incoming edge explains a SKIPPED task (behavior §2.1)."""
    if task.state != TaskState.SKIPPED.value:
        return None
    edges = [
        d for d in deps if d.downstream_task_key == task.task_key and d.resolution not in (None, "SUCCESS")
    ]
    if not edges:
        return None
    first = min(edges, key=lambda d: (d.satisfied_at or 0, d.upstream_task_key, d.row_version))
    return {"upstreamTaskKey": first.upstream_task_key, "upstreamResolution": str(first.resolution)}


def task_view(task: TaskRow, deps: tuple[DepRow, ...]) -> dict[str, Any]:
    retry = {"retries": task.attempt - 1, "reason": "prior_attempt_failed"} if task.attempt > 1 else None
    return _drop_none(
        {
            "taskKey": task.task_key,
            "assetKey": task.asset_key,
            "partitionKey": task.partition_key or None,
            "partition": partition_values(task.partition_key),
            "state": public_task_state(task.state),
            "attempt": task.attempt,
            "maxAttempts": task.max_attempts,
            "startedAt": _ts(task.started_at),
            "completedAt": _ts(task.completed_at),
            "lastHeartbeatAt": _ts(task.last_heartbeat_at),
            "retryNotBefore": _ts(task.retry_not_before)
            if task.state == TaskState.RETRY_WAIT.value
            else None,
            "errorMessage": task.error_message,
            "errorCategory": task.error_category,
            "stackTrace": task.error_stack_trace,
            "materializationId": task.materialization_id,
            "executionLineageRef": task.execution_lineage_ref,
            "codeVersion": task.code_version,
            "deltaTable": task.delta_table,
            "deltaVersion": task.delta_version,
            "deltaPartition": task.delta_partition,
            "output": json.loads(task.output_json) if task.output_json else None,
            "retryAttribution": retry,
            "skipAttribution": _skip_attribution(task, deps),
            "outputVisibilityState": task.output_visibility_state,
            "publishedAt": _ts(task.published_at),
            "publishError": task.publish_error,
            **_progress(task),
        }
    )


def _progress(task: TaskRow) -> dict[str, Any]:
    """The attempt's last reported progress, while it runs (a finished task's progress is history)."""
    if task.state != TaskState.RUNNING.value:
        return {}
    return {"progressMessage": task.progress_message, "progressPct": task.progress_pct}


def task_counts(tasks: Mapping[str, TaskRow]) -> dict[str, int]:
    counts = dict.fromkeys(
        ("total", "pending", "queued", "running", "succeeded", "failed", "skipped", "cancelled"), 0
    )
    counts["total"] = len(tasks)
    for task in tasks.values():
        counts[public_task_state(task.state).lower()] += 1
    return counts


def run_order(tasks: Mapping[str, TaskRow], deps: tuple[DepRow, ...]) -> list[str]:
    """Task keys upstream first (the order they can run in), ties by key, so a chain reads top-down."""
    upstream: dict[str, set[str]] = {key: set() for key in tasks}
    for dep in deps:
        if dep.downstream_task_key in upstream and dep.upstream_task_key in upstream:
            upstream[dep.downstream_task_key].add(dep.upstream_task_key)
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(upstream):
        ready = sorted(k for k, ups in upstream.items() if k not in placed and ups <= placed)
        if not ready:  # a cycle cannot be planned; show the rest by key rather than lose them
            ready = sorted(k for k in upstream if k not in placed)
        order.extend(ready)
        placed.update(ready)
    return order


def get_run(ctx: ServiceContext, tenant_id: str, workspace_id: str, run_id: str) -> dict[str, Any]:
    validate_path_component(run_id, "run id", 64)
    view = load_run(ctx, tenant_id, workspace_id, run_id)
    if view is None or view.run is None:
        raise NotFound(f"run {run_id} not found in workspace '{workspace_id}'")
    run = view.run
    state = public_run_state(run, view.tasks.values())
    started = [t.started_at for t in view.tasks.values() if t.started_at is not None]
    terminal = state in ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")
    labels = json.loads(run.labels) if run.labels else {}
    partitions = {t.partition_key for t in view.tasks.values() if t.partition_key}
    return _drop_none(
        {
            "runId": run.run_id,
            "workspaceId": workspace_id,
            "planId": run.plan_id,
            "runKey": run.run_key,
            "state": state,
            "createdAt": format_timestamp(run.triggered_at),
            "startedAt": _ts(min(started)) if started else None,
            "completedAt": _ts(run.completed_at) if terminal else None,
            "cancelRequested": run.cancel_requested or None,
            "cancelReason": run.cancel_reason,
            "codeVersion": run.code_version,
            "trigger": _trigger(run),
            # The run's one partition in the user's words; a run spanning several has none of its own.
            "partition": partition_values(partitions.pop()) if len(partitions) == 1 else None,
            "tasks": [task_view(view.tasks[k], view.deps) for k in run_order(view.tasks, view.deps)],
            "taskCounts": task_counts(view.tasks),
            "labels": labels,
            **rerun_fields(labels),
        }
    )


def _trigger(run: RunRow) -> dict[str, Any] | None:
    return trigger_view(json.loads(run.trigger_json) if run.trigger_json else None, run.trigger_type)


def _encode_cursor(triggered_at: int, run_id: str) -> str:
    raw = json.dumps({"triggered_at": triggered_at, "run_id": run_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        obj = json.loads(raw)
        triggered_at, run_id = obj["triggered_at"], obj["run_id"]
        if not isinstance(triggered_at, int) or not isinstance(run_id, str):
            raise ValueError
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidInput("cursor is not valid") from None
    return triggered_at, run_id


def page_limit(query: Mapping[str, str], default: int, maximum: int) -> int:
    raw = query.get("limit", str(default))
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidInput(f"limit must be an integer from 1 to {maximum}") from None
    if not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be an integer from 1 to {maximum}")
    return limit


def list_runs(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, query: Mapping[str, str]
) -> dict[str, Any]:
    limit = page_limit(query, 20, 200)
    cursor = _decode_cursor(query["cursor"]) if query.get("cursor") else None
    state = query.get("state")
    if state is not None and state not in PUBLIC_RUN_STATES:
        raise InvalidInput(f"state must be one of {', '.join(PUBLIC_RUN_STATES)}")
    ctx.settle(tenant_id, workspace_id)
    snapshot = ctx.snapshot(tenant_id, workspace_id)
    rows, next_cursor = snapshot.list_runs(limit=limit, cursor=cursor, state=state)
    runs = []
    for run in rows:
        runs.append(
            _drop_none(
                {
                    "runId": run.run_id,
                    "state": snapshot.public_state(run),
                    "createdAt": format_timestamp(run.triggered_at),
                    "completedAt": _ts(run.completed_at),
                    "taskCount": run.tasks_total,
                    "tasksSucceeded": run.tasks_succeeded,
                    "tasksFailed": run.tasks_failed,
                    "runKey": run.run_key,
                    "trigger": _trigger(run),
                }
            )
        )
    body: dict[str, Any] = {"runs": runs}
    if next_cursor is not None:
        body["nextCursor"] = _encode_cursor(*next_cursor)
    return body


# A streamed attempt's chunks: ``logs/{run}/{task}/attempt-{n}/{seq}.log`` (services.callbacks).
_CHUNK_NAME = re.compile(r"^(?P<attempt>.+/attempt-[0-9]+)/[0-9]+\.log$")


def attempt_log_name(object_name: str) -> str:
    """The attempt a log object belongs to, named as its whole-attempt object (``.../attempt-{n}.log``)."""
    chunk = _CHUNK_NAME.match(object_name)
    return f"{chunk.group('attempt')}.log" if chunk else object_name


def run_logs(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, run_id: str, query: Mapping[str, str]
) -> tuple[bytes, str | None]:
    """One page of captured logs (text), and the cursor of the next page.

    Each attempt's output follows a ``--- logs/{run}/{task}/attempt-{n}.log ---`` header line; a
    streamed attempt's chunks are joined in order under it. When a page ends inside an attempt, the
    next page repeats the header and carries on (readers join text under the same header).
    """
    validate_path_component(run_id, "run id", 64)
    limit = page_limit(query, 50, 200)
    prefix = f"logs/{run_id}/"
    task_key = query.get("taskKey")
    if task_key:
        prefix += f"{validate_path_component(task_key, 'taskKey')}/"
    cursor = query.get("cursor")
    if cursor is not None and not cursor.startswith(prefix):
        raise InvalidInput("cursor does not belong to this run/task")
    store = ctx.workspace_store(tenant_id, workspace_id)
    metas = store.list(prefix, start_offset=cursor, limit=limit + 1)
    if not metas and cursor is None:
        raise NotFound(f"no logs for run {run_id}" + (f" task {task_key}" if task_key else ""))
    page: list[bytes] = []
    next_cursor: str | None = None
    size = 0
    current: str | None = None
    for i, meta in enumerate(metas):
        if i == limit or (page and size + meta.size > MAX_LOG_PAGE_BYTES):
            next_cursor = meta.name
            break
        obj = store.get(meta.name)
        if obj is None:
            continue
        attempt = attempt_log_name(meta.name)
        if attempt != current:
            if page and not page[-1].endswith(b"\n"):
                page.append(b"\n")
            page.append(f"--- {attempt} ---\n".encode())
            current = attempt
        page.append(obj.data)
        size += len(obj.data)
    return b"".join(page), next_cursor
