"""Worker callbacks: started / heartbeat / completed / logs (behavior §6, contracts §10, design §6–§7).

The checks run in the contract's order and each refusal has its exact status and body. The token is
verified first because it names the tenant and workspace to look in; it is then compared with the
task's *current* row, so a token of another task, run, attempt or tenant can never act (401). Event
times are the server's receipt time: a worker's clock is an observation, never an ordering.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from servo.core.canonical_json import canonical_dumps
from servo.core.controller import completion_only_progress
from servo.core.errors import CallbackRejected, InvalidMessage, InvalidTaskId, Unauthorized
from servo.core.events import (
    Event,
    TaskFinished,
    TaskHeartbeat,
    TaskStarted,
    ledger_object_name,
    make_encoded_event,
)
from servo.core.ids import attempt_id, dispatch_id
from servo.core.keys import decode_task_id, encode_task_id
from servo.core.protocol import CompletedRequest, HeartbeatRequest, StartedRequest
from servo.core.rows import RunRow, TaskRow
from servo.core.state import RunPartition
from servo.core.states import RUN_TERMINAL, TASK_TERMINAL, RunState, TaskState
from servo.core.timefmt import format_timestamp
from servo.services._recent_writes import RecentWrites, recent_writes
from servo.services.callback_dispatch import dispatch_made_ready, has_downstream, planned_dispatches
from servo.services.context import ServiceContext
from servo.services.ledger import append_made, hasten
from servo.store import create_once
from servo.tokens import TaskTokenClaims, verify_task_token

MAX_LOG_BYTES = 2 * 1024 * 1024
# A streamed chunk is what a worker captured between two flushes; the worker sends far less.
MAX_LOG_CHUNK_BYTES = 1024 * 1024
MAX_LOG_SEQ = 999_999
T = TypeVar("T")
_TERMINAL = frozenset(s.value for s in TASK_TERMINAL)


@dataclass(frozen=True, slots=True)
class Located:
    claims: TaskTokenClaims
    run: RunRow
    task: TaskRow
    part: RunPartition  # the run as this callback sees it: a published view, and its own writes since


def _run_part(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, run_id: str, max_age_ms: int
) -> RunPartition | None:
    """The run as a callback sees it; shared with the snapshot cache and the run's other callbacks,
    so a callback that changes it changes a copy (``_locate``)."""
    part = ctx.snapshot(tenant_id, workspace_id, max_age_ms=max_age_ms).partition(run_id)
    recent = recent_writes(ctx)
    if recent is None:
        return part
    if part is None:  # not published yet: known here only if this instance triggered it
        ahead = recent.unpublished_view(tenant_id, workspace_id, run_id, ctx.clock_ms())
        return ahead if ahead.run is not None else None
    return recent.view(tenant_id, workspace_id, part, ctx.clock_ms())


def _bearer(headers: Mapping[str, str]) -> str:
    # Behind API Gateway the worker's Authorization header arrives as X-Forwarded-Authorization (the
    # gateway authenticates itself to the function with its own token in Authorization).
    value = headers.get("x-forwarded-authorization") or headers.get("authorization", "")
    if not value.startswith("Bearer ") or not value[7:].strip():
        raise CallbackRejected(401, "invalid_token", "missing bearer task token")
    return value[7:].strip()


def _locate(
    ctx: ServiceContext,
    task_id: str,
    headers: Mapping[str, str],
    max_age_ms: int = 0,
    *,
    past_attempts: bool = False,
) -> Located:
    """Token → (tenant, workspace); task id → row; then the token must match that row exactly.

    ``max_age_ms`` > 0 lets the row come from a head this instance saw that recently (see _recent).
    ``past_attempts``: a token of an earlier attempt of the task is accepted too (its attempt id is
    the deterministic one of that attempt's dispatch), so the output of an attempt the control plane
    already gave up on (timed out, lost, cancelled) can still be stored.
    """
    try:
        claims = verify_task_token(ctx.settings.token_keys, _bearer(headers), ctx.clock_ms() // 1000)
    except Unauthorized as exc:
        raise CallbackRejected(401, "invalid_token", exc.message) from None
    if task_id.startswith("ct1_"):
        try:
            run_id, task_key = decode_task_id(task_id)
        except InvalidTaskId as exc:
            raise CallbackRejected(404, "task_not_found", exc.message) from None
        # A token names the one task it may act on: a token of any other task (of this tenant or
        # another) is refused before anything is looked up, so it learns nothing and changes nothing.
        if claims.task_id != task_id:
            raise CallbackRejected(401, "invalid_token", "task token is not valid for this task (taskId)")
        if claims.run_id is not None and run_id != claims.run_id:
            raise CallbackRejected(404, "task_not_found", f"task {task_id} is not in run {claims.run_id}")
    else:
        # A bare task key (legacy workers) is resolved within the token's run: unambiguous by design.
        if claims.run_id is None:
            raise CallbackRejected(400, "task_id_ambiguous", f"task key {task_id!r} needs a run-scoped token")
        run_id, task_key = claims.run_id, task_id
    part = _run_part(ctx, claims.tenant_id, claims.workspace_id, run_id, max_age_ms)
    task = part.tasks.get(task_key) if part is not None else None
    if part is None and _proves_a_dispatch(claims, run_id, task_key):
        # Only the control plane mints a dispatch's token, so its run is in the ledger: triggered by
        # an instance that dispatched the run's roots before any publish showed the run.
        raise CallbackRejected(
            503, "dispatch_not_visible", "this attempt's run is not published yet: retry shortly"
        )
    if part is None or part.run is None or task is None:
        raise CallbackRejected(404, "task_not_found", f"no task {task_key!r} in run {run_id}")
    run = part.run
    dispatched = _as_dispatched(task, claims)
    if dispatched is not task and dispatched.state == TaskState.DISPATCHED.value:
        # The run as this callback sees it holds the dispatch the token proves, so that a completion
        # folded ahead of it finishes this attempt (services/callback_dispatch).
        part = part.copy()
        part.tasks[task_key] = dispatched
    task = dispatched
    if past_attempts and claims.attempt is not None and 1 <= claims.attempt < task.attempt:
        past_id = attempt_id(dispatch_id(run_id, task_key, claims.attempt))
        task = replace(task, attempt=claims.attempt, attempt_id=past_id)
    expected = {
        "taskId": encode_task_id(run_id, task_key),
        "runId": run_id,
        "attempt": task.attempt,
        "attemptId": task.attempt_id,
    }
    given = {
        "taskId": claims.task_id,
        "runId": claims.run_id,
        "attempt": claims.attempt,
        "attemptId": claims.attempt_id,
    }
    wrong = sorted(k for k in expected if given[k] is not None and given[k] != expected[k])
    if claims.task_id != expected["taskId"]:
        wrong = sorted({*wrong, "taskId"})
    if wrong:
        raise CallbackRejected(
            401, "invalid_token", f"task token is not valid for this task ({', '.join(wrong)})"
        )
    return Located(claims, run, task, part)


def _proves_a_dispatch(claims: TaskTokenClaims, run_id: str, task_key: str) -> bool:
    """Whether the token is one the controller minted for a dispatch of this task (``_locate`` has
    matched its task id): its attempt id is the deterministic one of its attempt's dispatch."""
    attempt = claims.attempt
    if attempt is None or attempt < 1:
        return False
    return claims.attempt_id == attempt_id(dispatch_id(run_id, task_key, attempt))


def _as_dispatched(task: TaskRow, claims: TaskTokenClaims) -> TaskRow:
    """The row as the dispatch the controller is recording right now, when the token proves one.

    The controller enqueues first and records DispatchRequested+DispatchEnqueued in the same write
    (one publish per dispatch, not two), so a fast worker can call back before that write is
    published. Its token is then for exactly the next attempt of a READY / RETRY_WAIT task, with the
    deterministic attempt id of that dispatch; only the controller mints such tokens. Anything else
    is checked against the row as it is.

    A completing callback dispatches what its success made ready without waiting for any publish
    (services/callback_dispatch), so the row may even be BLOCKED still, on an instance that did not
    write that dispatch. The token proves the control plane decided it from a view that showed the
    task ready; whether the ledger agrees shows with the next publish, so the worker is asked to
    retry (503), never told to drop the delivery.
    """
    if task.state in _TERMINAL and claims.attempt is not None and claims.attempt > task.attempt:
        # A dispatch decided from a view that the cancel (or an upstream's failure) had not reached:
        # the answer is that the task is over (409, "do not run"), not that the token is foreign.
        if _proves_a_dispatch(claims, task.run_id, task.task_key):
            return replace(task, attempt=claims.attempt, attempt_id=claims.attempt_id)
        return task
    if task.state in (TaskState.READY.value, TaskState.BLOCKED.value):
        next_attempt = max(1, task.attempt)
    elif task.state == TaskState.RETRY_WAIT.value and task.attempt < task.max_attempts:
        next_attempt = task.attempt + 1
    else:
        return task
    if claims.attempt != next_attempt or not _proves_a_dispatch(claims, task.run_id, task.task_key):
        return task
    if task.state == TaskState.BLOCKED.value:
        raise CallbackRejected(
            503, "dispatch_not_visible", "this attempt's dispatch is not published yet: retry shortly"
        )
    return replace(task, state=TaskState.DISPATCHED.value, attempt=next_attempt, attempt_id=claims.attempt_id)


def _attempt_checks(
    loc: Located, attempt: int, attempt_id: str, *, terminal_status: int, started: bool
) -> None:
    task = loc.task
    if task.state in {s.value for s in TASK_TERMINAL}:
        error = "task_already_terminal" if terminal_status == 409 else "task_expired"
        raise CallbackRejected(terminal_status, error, f"task is already {task.state}", state=task.state)
    if started and task.state == TaskState.RETRY_WAIT.value and attempt == task.attempt:
        raise CallbackRejected(
            409, "attempt_already_completed", f"attempt {attempt} already completed", state=task.state
        )
    if attempt != task.attempt:
        raise CallbackRejected(
            409,
            "attempt_mismatch",
            f"attempt {attempt} is not the current attempt {task.attempt}",
            expectedAttempt=task.attempt,
            receivedAttempt=attempt,
        )
    if attempt_id != task.attempt_id:
        raise CallbackRejected(
            409,
            "attempt_id_mismatch",
            "attemptId is not the current attempt's",
            expectedAttemptId=task.attempt_id,
            receivedAttemptId=attempt_id,
        )


def _zero_attempt(body: Mapping[str, Any]) -> None:
    if body.get("attempt") == 0:
        raise CallbackRejected(400, "invalid_argument", "attempt must be >= 1")


def _parse(model: Any, body: Mapping[str, Any]) -> Any:
    _zero_attempt(body)
    try:
        return model.from_json(body)
    except InvalidMessage as exc:
        raise CallbackRejected(400, "invalid_argument", exc.message) from None


def _cancel_requested(run: RunRow) -> bool:
    return run.cancel_requested or bool(run.timed_out) or RunState(run.state) in RUN_TERMINAL


def _event(ctx: ServiceContext, loc: Located, data: Any, now: int) -> tuple[Event, bytes]:
    return make_encoded_event(
        data,
        event_id=ctx.ids.new(now),
        timestamp_ms=now,
        tenant_id=loc.claims.tenant_id,
        workspace_id=loc.claims.workspace_id,
    )


def _append(
    ctx: ServiceContext,
    loc: Located,
    data: Any,
    now: int,
    *,
    made: tuple[Event, bytes] | None = None,
    urgent: bool | None = None,
) -> Event:
    made = made or _event(ctx, loc, data, now)
    event = made[0]
    # The worker never reads back its own facts: its next call passes the same checks whether or not
    # this one is published yet (as on GCP, where compaction is asynchronous), so it does not wait.
    append_made(
        ctx, loc.claims.tenant_id, loc.claims.workspace_id, [made], await_publish=False, urgent=urgent
    )
    recent = recent_writes(ctx)
    if recent is not None and not isinstance(data, TaskHeartbeat) and _needed_ahead(loc):
        recent.remember(loc.claims.tenant_id, loc.claims.workspace_id, [event], now)
    return event


def _needed_ahead(loc: Located) -> bool:
    """Whether the run's other callbacks must see this task's facts before they are published: only
    if they can make a downstream task ready (a fan-out's children would otherwise have every callback
    of the run fold all their siblings' unpublished facts ahead: a copy of the whole run each)."""
    return has_downstream(loc.part, loc.task.task_key)


def _recent(ctx: ServiceContext, check: Callable[[int], T]) -> T:
    """``check`` against the head this instance saw within the configured age, and only if that
    refuses, against a fresh head: a refusal is always the current state's.

    An acceptance from a recent head is as good as one from a fresh head whose compaction has not
    caught up yet, which every callback already lives with: the fold, not the callback, keeps
    terminal states final and the first completion of an attempt.
    """
    max_age = ctx.settings.callback_view_max_age_ms
    if max_age > 0:
        with contextlib.suppress(CallbackRejected):
            return check(max_age)
    return check(0)


def _accept(
    ctx: ServiceContext,
    model: Any,
    task_id: str,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    *,
    terminal_status: int,
    started: bool = False,
    recent_ok: bool = False,
) -> tuple[Any, Located]:
    """The ordered checks every callback shares: body, token and task, then the attempt guards.

    ``recent_ok``: accepted against a recent head (see _recent); ``started`` is always checked on the
    current head, since its answer decides whether the asset runs at all.
    """
    req = _parse(model, body)

    def check(max_age_ms: int) -> Located:
        loc = _locate(ctx, task_id, headers, max_age_ms)
        _attempt_checks(loc, req.attempt, req.attempt_id, terminal_status=terminal_status, started=started)
        return loc

    return req, (_recent(ctx, check) if recent_ok else check(0))


def _attempt_fields(loc: Located, req: Any) -> dict[str, Any]:
    """The identity every worker fact carries: which task, which attempt, which worker."""
    return {
        "run_id": loc.task.run_id,
        "task_key": loc.task.task_key,
        "attempt": req.attempt,
        "attempt_id": req.attempt_id,
        "worker_id": req.worker_id,
    }


def task_started(
    ctx: ServiceContext, task_id: str, headers: Mapping[str, str], body: Mapping[str, Any]
) -> dict[str, Any]:
    """Record that a worker started the attempt; refused (409) when it must not run.

    One delivery runs an attempt. A delivery can outlive the queue's dispatch deadline (an asset
    running longer than 30 min): Cloud Tasks then delivers the same envelope again, maybe to another
    instance, while the first still runs; the sweep's repair of a dispatch stuck in CREATED enqueues it
    again too. So the first ``started`` of an attempt claims it for its delivery (the worker's
    ``executionId``, create-if-absent), and a ``started`` of any other delivery of that attempt is
    refused 409 ``attempt_already_started``: the worker acknowledges that delivery without running
    the asset. The same delivery re-sending ``started`` (a lost response) meets its own claim and is
    accepted again. If the running delivery dies, the heartbeat limit fails the attempt and the retry
    is a new attempt with a new claim.
    """
    req, loc = _accept(ctx, StartedRequest, task_id, headers, body, terminal_status=409, started=True)
    if loc.run.cancel_requested or loc.run.timed_out:
        raise CallbackRejected(409, "task_already_terminal", "the run is being cancelled", state="CANCELLED")
    if req.execution_id is not None:
        _claim_attempt(ctx, loc, req)
    now = ctx.clock_ms()
    _append(ctx, loc, TaskStarted(**_attempt_fields(loc, req)), now)
    return {"acknowledged": True, "serverTime": format_timestamp(now)}


def _heard_recently(task: TaskRow, req: HeartbeatRequest, now: int) -> bool:
    """True when this heartbeat would tell the ledger nothing new: the attempt's last recorded one is
    younger than a tenth of its heartbeat timeout and carried the same progress.

    A worker may then beat often (locally every second, so a cancel reaches the asset at once) while
    the ledger gets at most ten heartbeats per timeout. Production workers beat every fifth of the
    timeout, so each of theirs is still recorded. The row may lag the ledger (compaction is
    asynchronous), which can only cause an extra write.
    """
    if task.last_heartbeat_at is None or task.state != TaskState.RUNNING.value:
        return False
    fresh = now - task.last_heartbeat_at < task.heartbeat_timeout_sec * 1000 // 10
    progress = (req.message, req.progress_pct)
    # No progress at all keeps the recorded one (see the fold), so it is nothing new either.
    news = progress != (None, None) and progress != (task.progress_message, task.progress_pct)
    return fresh and not news


MAX_EXECUTION_ID = 128


def attempt_claim_name(run_id: str, task_key: str, attempt_id: str) -> str:
    digest = hashlib.sha256(f"{run_id}\0{task_key}\0{attempt_id}".encode()).hexdigest()[:40]
    return f"attempt_claims/{digest}.json"


def _claim_attempt(ctx: ServiceContext, loc: Located, req: StartedRequest) -> None:
    execution = req.execution_id or ""
    if len(execution) > MAX_EXECUTION_ID:
        raise CallbackRejected(
            400, "invalid_argument", f"executionId is at most {MAX_EXECUTION_ID} characters"
        )
    store = ctx.workspace_store(loc.claims.tenant_id, loc.claims.workspace_id)
    name = attempt_claim_name(loc.task.run_id, loc.task.task_key, req.attempt_id)
    if create_once(store, name, canonical_dumps({"executionId": execution}).encode()):
        return
    raise CallbackRejected(
        409,
        "attempt_already_started",
        f"attempt {req.attempt} was already started by another delivery",
        state=loc.task.state,
    )


def task_heartbeat(
    ctx: ServiceContext, task_id: str, headers: Mapping[str, str], body: Mapping[str, Any]
) -> dict[str, Any]:
    req, loc = _accept(ctx, HeartbeatRequest, task_id, headers, body, terminal_status=410)
    now = ctx.clock_ms()
    if not _heard_recently(loc.task, req, now):
        fact = TaskHeartbeat(
            **_attempt_fields(loc, req), heartbeat_at=now, progress_pct=req.progress_pct, message=req.message
        )
        _append(ctx, loc, fact, now)
    response: dict[str, Any] = {"acknowledged": True, "shouldCancel": _cancel_requested(loc.run)}
    if response["shouldCancel"]:
        response["cancelReason"] = "run_timed_out" if loc.run.timed_out else "user_requested"
    response["serverTime"] = format_timestamp(now)
    return response


def task_completed(
    ctx: ServiceContext, task_id: str, headers: Mapping[str, str], body: Mapping[str, Any]
) -> dict[str, Any]:
    req, loc = _accept(ctx, CompletedRequest, task_id, headers, body, terminal_status=409, recent_ok=True)
    now = ctx.clock_ms()
    output = req.output.to_json() if req.output is not None else None
    error = req.error.to_json() if req.error is not None else None
    partial = req.partial_progress
    fact = TaskFinished(
        **_attempt_fields(loc, req),
        outcome=req.outcome.lower(),
        materialization_id=(output or {}).get("materializationId"),
        error_message=(error or {}).get("message"),
        output=output,
        error=error,
        metrics=req.metrics.to_json() if req.metrics is not None else None,
        cancelled_during_phase=req.cancelled_during_phase,
        partial_progress_json=canonical_dumps(partial) if partial is not None else None,
        asset_key=loc.task.asset_key,
        partition_key=loc.task.partition_key,
        code_version=loc.task.code_version,
        error_category=(error or {}).get("category"),
        dispatched_at=loc.claims.iat * 1000,
    )
    recent = recent_writes(ctx)
    if recent is None:
        _append(ctx, loc, fact, now)
    else:
        made = _event(ctx, loc, fact, now)
        tenant_id, workspace_id = loc.claims.tenant_id, loc.claims.workspace_id
        planned = planned_dispatches(ctx, recent, tenant_id, workspace_id, loc.part, loc.task, made[0])
        # A completion whose next hop this callback dispatches unblocks nothing more: it may share a
        # later publish with that hop's progress, and so may a fan-out leaf's while its siblings run.
        # One that ends the run, fails, or leaves its downstream to the compactor, is published as
        # soon as the window allows.
        progress = bool(planned[1]) or completion_only_progress(loc.part, loc.task, fact.outcome)
        _append(ctx, loc, fact, now, made=made, urgent=False if progress else None)
        if progress and not planned[1]:
            _end_of_leaves(ctx, recent, loc, made[0], now)
        dispatch_made_ready(ctx, recent, loc.claims.tenant_id, loc.claims.workspace_id, loc.task, planned)
    return {"acknowledged": True, "finalState": req.outcome, "serverTime": format_timestamp(now)}


def _end_of_leaves(ctx: ServiceContext, recent: RecentWrites, loc: Located, event: Event, now: int) -> None:
    """A leaf's success handed over as progress may be the run's last completion, though its view
    (which leaves' facts are not folded into) still shows siblings running: once this instance's
    notes count none open, hand it over again as urgent, so the run's end is published at once."""
    tenant_id, workspace_id = loc.claims.tenant_id, loc.claims.workspace_id
    if recent.leaf_ended(tenant_id, workspace_id, loc.part, loc.task.task_key, event, now) > 0:
        return
    hasten(ctx, tenant_id, workspace_id, [ledger_object_name(event.event_id)])


def log_object_name(run_id: str, task_key: str, attempt: int, seq: int | None = None) -> str:
    """Where one attempt's output goes: a whole object (the contract's original upload) or, when the
    worker streams it, chunk ``seq`` of the attempt (``attempt-{n}/{seq:06d}.log``, read in order)."""
    if seq is None:
        return f"logs/{run_id}/{task_key}/attempt-{attempt}.log"
    return f"logs/{run_id}/{task_key}/attempt-{attempt}/{seq:06d}.log"


def _log_body(body: Mapping[str, Any]) -> tuple[int | None, bytes]:
    """(chunk seq or None, object bytes) of a ``logs`` callback body.

    Two shapes: ``{attempt, stdout, stderr}`` stores the attempt's whole output at once (contracts §8);
    ``{attempt, seq, text}`` stores one chunk of the output a worker uploads while the attempt runs.
    """
    stdout, stderr = body.get("stdout", ""), body.get("stderr", "")
    if not isinstance(stdout, str) or not isinstance(stderr, str):
        raise CallbackRejected(400, "invalid_argument", "stdout and stderr must be strings")
    if "seq" in body or "text" in body:
        seq, text = body.get("seq"), body.get("text")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_LOG_SEQ:
            raise CallbackRejected(400, "invalid_argument", f"seq must be an integer from 0 to {MAX_LOG_SEQ}")
        if not isinstance(text, str):
            raise CallbackRejected(400, "invalid_argument", "text must be a string")
        data = text.encode()
        if len(data) > MAX_LOG_CHUNK_BYTES:
            raise CallbackRejected(
                400, "invalid_argument", f"a log chunk holds at most {MAX_LOG_CHUNK_BYTES} bytes"
            )
        return seq, data
    data = f"=== stdout ===\n{stdout}\n=== stderr ===\n{stderr}\n".encode()
    if len(data) > MAX_LOG_BYTES:
        # Keep the tail: the end of a log is where the failure is.
        data = b"[truncated]\n" + data[-(MAX_LOG_BYTES - 12) :]
    return None, data


def upload_logs(
    ctx: ServiceContext, task_id: str, headers: Mapping[str, str], body: Mapping[str, Any]
) -> dict[str, Any]:
    """Store captured output of one attempt, create-if-absent (contracts §8), whole or by chunks.

    Accepted for the task's current attempt and for its earlier ones, in any state: an attempt that
    timed out, was cancelled or whose worker was given up on keeps whatever it could still send.
    """
    _zero_attempt(body)
    attempt = body.get("attempt")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise CallbackRejected(400, "invalid_argument", "attempt must be an integer >= 1")
    seq, data = _log_body(body)

    def check(max_age_ms: int) -> Located:
        loc = _locate(ctx, task_id, headers, max_age_ms, past_attempts=True)
        if attempt != loc.task.attempt:
            raise CallbackRejected(
                409,
                "attempt_mismatch",
                f"attempt {attempt} is not the attempt this token was issued for",
                expectedAttempt=loc.task.attempt,
                receivedAttempt=attempt,
            )
        return loc

    loc = _recent(ctx, check)
    name = log_object_name(loc.task.run_id, loc.task.task_key, attempt, seq)
    store = ctx.workspace_store(loc.claims.tenant_id, loc.claims.workspace_id)
    if not create_once(store, name, data, content_type="text/plain; charset=utf-8"):
        what = f"log chunk {seq}" if seq is not None else "logs"
        raise CallbackRejected(409, "logs_already_uploaded", f"{what} for attempt {attempt} already exist")
    return {"acknowledged": True, "path": name, "sizeBytes": len(data)}
