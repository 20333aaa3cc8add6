"""Settings, read once from the environment into a frozen object.

Clients are built lazily at the edge (``object_store()``, ``task_queue()``) and injected into the
services; nothing in ``servo`` creates a client at import time.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from servo.core.errors import InvalidInput

if TYPE_CHECKING:
    from servo.dispatch import TaskQueue
    from servo.store import ObjectStore


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be an integer, got {raw!r}") from exc


# The internal credential: the dispatch secret, which Cloud Tasks (dispatches, due timers) and Cloud
# Scheduler (the sweep) send in this header. Internal routes refuse a request without it in every mode.
INTERNAL_CREDENTIAL_HEADER = "X-Servo-Dispatch-Secret"

# Development secrets of the local stacks only: Settings.from_env refuses to use them on real GCS.
_DEV_TOKEN_SECRET = b"servo-local-task-token-secret-0123456789"
_DEV_DISPATCH_SECRET = "servo-local-dispatch-secret"

_WORKER_URL = "http://127.0.0.1:8081/dispatch"
_TIMERS_URL = "http://127.0.0.1:8080/v1/timers/fire"
_API_URL = "http://127.0.0.1:8080"


DEFAULT_GROUP_COMMIT_WINDOW_MS = 50
# How long writes that unblock nothing (dispatch records, starts, heartbeats) may wait for company.
DEFAULT_GROUP_COMMIT_PROGRESS_WINDOW_MS = 500
# A bucket holds a whole day's runs, so moving ended runs one by one would cost a busy day's bucket per
# run end; the manifest carries at most this many ended entries (a few hundred bytes each).
DEFAULT_ENDED_RUNS_PER_INDEX_WRITE = 32


def _require_real_secrets(token_secret: str | None, dispatch_secret: str | None) -> None:
    """Fail closed on real GCS: with the built-in secrets anyone could mint task tokens and dispatches."""
    if (
        not token_secret
        or not dispatch_secret
        or token_secret.encode() == _DEV_TOKEN_SECRET
        or dispatch_secret == _DEV_DISPATCH_SECRET
    ):
        raise InvalidInput(
            "SERVO_TOKEN_SECRET and SERVO_DISPATCH_SECRET must be set to real secrets when "
            "SERVO_STORAGE=gcs (only the local stacks may run on the built-in development secrets)"
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a function or the local stack needs to know about where it runs."""

    storage: str = "local"  # local | gcs
    data_dir: Path = Path(".servo-dev/data")
    bucket: str = "servo-local"
    storage_emulator_host: str | None = None
    project: str = "servo-local"
    location: str = "us-central1"
    queue: str = "default-queue"
    # Due timers' own queue, so that a dispatch backlog never delays them; "" shares ``queue``.
    timers_queue: str = ""
    # Sensor evaluations' own queue (automation §9, ``{prefix}-sensors``); "" shares ``queue``.
    sensors_queue: str = ""
    tasks_emulator_host: str | None = None
    # Where Cloud Tasks deliver: the worker (dispatch envelopes) and the timers function (due timers).
    worker_url: str = _WORKER_URL
    timers_url: str = _TIMERS_URL
    api_url: str = _API_URL  # the callbackBaseUrl handed to workers
    tasks_service_account: str | None = None
    # The account whose OIDC token Pub/Sub push subscriptions carry to a push sensor (automation §9).
    push_service_account: str | None = None
    # GCP: the sweep re-kicks the compactor (by writing a ledger/kicks/ object whose finalize event
    # reaches it) instead of compacting itself, so that only the compactor writes state/ (design §2).
    sweep_kicks: bool = False
    token_secret: bytes = field(default=_DEV_TOKEN_SECRET, repr=False)
    # During a key rotation, the key being replaced: tokens it signed are still accepted (GCP mounts
    # it from the secret's previous version; infra/modules/servo-core/secrets.tf).
    token_secret_previous: bytes = field(default=b"", repr=False)
    dispatch_secret: str = field(default=_DEV_DISPATCH_SECRET, repr=False)
    api_token: str | None = field(default=None, repr=False)  # optional static bearer for the local API
    tenant_secret: bytes = field(default=b"", repr=False)
    # The tenant a request acts for when no X-Servo-Tenant header names one (single-tenant deployments).
    default_tenant: str = "default"
    # A deployment that serves default_tenant only (GCP: the gateway authenticates callers, not
    # tenants, so X-Servo-Tenant naming another tenant is refused rather than trusted).
    single_tenant: bool = False
    heartbeat_timeout_sec: int = 90
    cancel_grace_sec: int = 30
    # How long the queue waits for a worker's answer to one delivery before it delivers again (Cloud
    # Tasks allows at most 30 min); an attempt may run longer (see services/callbacks.task_started).
    worker_dispatch_deadline_s: int = 1800
    min_publish_interval_ms: int = 0  # on GCS the head pointer may change at most once a second
    # Embedded stack: how long after a publish the group commit collects writes before the next one
    # (a longer window means fewer, larger publishes; an idle stack still publishes at once). 50 ms
    # lets a quick task's dispatch, start and finish share one publish on a slow 2-core machine too.
    group_commit_window_ms: int = DEFAULT_GROUP_COMMIT_WINDOW_MS
    group_commit_progress_window_ms: int = DEFAULT_GROUP_COMMIT_PROGRESS_WINDOW_MS
    # Ended runs wait in the state manifest until this many have ended, then move to their day's
    # index buckets in one rewrite per bucket (a bucket holds a whole day's runs).
    ended_runs_per_index_write: int = DEFAULT_ENDED_RUNS_PER_INDEX_WRITE
    # A worker's ``logs`` and ``completed`` follow its ``started`` within moments: they may be accepted
    # against the head this instance saw this recently (a refusal is always checked on a fresh head).
    # Compaction is asynchronous anyway, so this only adds to a lag the callbacks already live with.
    callback_view_max_age_ms: int = 1000
    # A worker's ``completed`` dispatches the downstream tasks its success made ready itself, instead
    # of waiting for the publish that would show them READY (on GCS at most one a second). On where
    # compaction is asynchronous (GCS), and on the embedded stack (set by the stack itself), whose group
    # commit then lets a chain's hops share a publish instead of paying one a hop.
    callback_dispatch: bool = False
    # A trigger dispatches the root tasks its run starts with itself, as a completing callback does its
    # downstream, so a short run's creation shares the publish of its end instead of paying one of its
    # own before its first task can start. Only where the callbacks of those roots reach the process
    # that triggered (the embedded stack, which sets it): elsewhere they could not see the run before
    # its publish and would only ask the worker to retry. Needs ``callback_dispatch``.
    trigger_dispatch: bool = False
    # A dispatch the controller enqueued is recorded by DispatchRequested alone, and its acknowledgement
    # (DispatchEnqueued) by the next pass that still finds the task waiting for its worker: a task that
    # has started by then makes the acknowledgement moot (the fold rejects it), which saves one ledger
    # object a task where workers start at once. On for the local stacks' in-process queue; off on GCS,
    # where a worker's start can take longer than the next publish.
    defer_dispatch_ack: bool = True

    @property
    def token_keys(self) -> tuple[bytes, ...]:
        """Every task-token key accepted: the current one first, then the one being rotated out."""
        return (
            (self.token_secret, self.token_secret_previous)
            if self.token_secret_previous
            else (self.token_secret,)
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        storage = e.get("SERVO_STORAGE", "local")
        if storage not in ("local", "gcs"):
            raise InvalidInput(f"SERVO_STORAGE must be 'local' or 'gcs', got {storage!r}")
        secret = e.get("SERVO_TOKEN_SECRET")
        dispatch_secret = e.get("SERVO_DISPATCH_SECRET")
        settings = cls(
            storage=storage,
            data_dir=Path(e.get("SERVO_DATA_DIR", ".servo-dev/data")),
            bucket=e.get("SERVO_BUCKET", "servo-local"),
            storage_emulator_host=e.get("STORAGE_EMULATOR_HOST") or None,
            project=e.get("SERVO_PROJECT", "servo-local"),
            location=e.get("SERVO_LOCATION", "us-central1"),
            queue=e.get("SERVO_TASKS_QUEUE", "default-queue"),
            timers_queue=e.get("SERVO_TIMERS_QUEUE", ""),
            sensors_queue=e.get("SERVO_SENSORS_QUEUE", ""),
            tasks_emulator_host=e.get("SERVO_TASKS_EMULATOR_HOST") or None,
            worker_url=e.get("SERVO_WORKER_URL", _WORKER_URL),
            timers_url=e.get("SERVO_TIMERS_URL", _TIMERS_URL),
            api_url=e.get("SERVO_API_URL", _API_URL).rstrip("/"),
            tasks_service_account=e.get("SERVO_TASKS_SERVICE_ACCOUNT") or None,
            push_service_account=e.get("SERVO_PUSH_SERVICE_ACCOUNT") or None,
            sweep_kicks=e.get("SERVO_SWEEP_KICKS", "") in ("1", "true", "yes"),
            token_secret=secret.encode() if secret else _DEV_TOKEN_SECRET,
            token_secret_previous=e.get("SERVO_TOKEN_SECRET_PREVIOUS", "").encode(),
            dispatch_secret=dispatch_secret or _DEV_DISPATCH_SECRET,
            api_token=e.get("SERVO_API_TOKEN") or None,
            tenant_secret=base64.b64decode(e.get("SERVO_TENANT_SECRET_B64", "")),
            default_tenant=e.get("SERVO_TENANT", "default"),
            single_tenant=e.get("SERVO_SINGLE_TENANT", "") in ("1", "true", "yes"),
            heartbeat_timeout_sec=_int(e, "SERVO_HEARTBEAT_TIMEOUT_SEC", 90),
            cancel_grace_sec=_int(e, "SERVO_CANCEL_GRACE_SEC", 30),
            min_publish_interval_ms=_int(e, "SERVO_MIN_PUBLISH_INTERVAL_MS", 1000 if storage == "gcs" else 0),
            group_commit_window_ms=_int(e, "SERVO_GROUP_COMMIT_WINDOW_MS", DEFAULT_GROUP_COMMIT_WINDOW_MS),
            group_commit_progress_window_ms=_int(
                e, "SERVO_GROUP_COMMIT_PROGRESS_WINDOW_MS", DEFAULT_GROUP_COMMIT_PROGRESS_WINDOW_MS
            ),
            ended_runs_per_index_write=_int(
                e, "SERVO_ENDED_RUNS_PER_INDEX_WRITE", DEFAULT_ENDED_RUNS_PER_INDEX_WRITE
            ),
            callback_view_max_age_ms=_int(e, "SERVO_CALLBACK_VIEW_MAX_AGE_MS", 1000),
            callback_dispatch=e.get("SERVO_CALLBACK_DISPATCH", "1" if storage == "gcs" else "0")
            in ("1", "true", "yes"),
            trigger_dispatch=e.get("SERVO_TRIGGER_DISPATCH", "0") in ("1", "true", "yes"),
            defer_dispatch_ack=e.get("SERVO_DEFER_DISPATCH_ACK", "0" if storage == "gcs" else "1")
            in ("1", "true", "yes"),
        )
        if settings.on_gcp:
            _require_real_secrets(secret, dispatch_secret)
        return settings

    @property
    def on_gcp(self) -> bool:
        """Deployed: real GCS, not the emulator stack (the local stacks run on development defaults)."""
        return self.storage == "gcs" and self.storage_emulator_host is None

    @property
    def platform_authenticates_scheduler(self) -> bool:
        """Whether Cloud Scheduler's sweep is authenticated by the platform instead of the dispatch secret.

        Deployed, the job carries only its OIDC token, which Cloud Run's invoker binding checks: the
        secret never enters Terraform's state, so the job cannot send it. Every other internal request
        (a due timer's Cloud Task) carries the secret, and the local stacks require it of the sweep too.
        """
        return self.on_gcp

    def internal_headers(self) -> dict[str, str]:
        """What a caller of an internal route (a timer task, the scheduler's sweep) sends."""
        return {INTERNAL_CREDENTIAL_HEADER: self.dispatch_secret}

    def object_store(self) -> ObjectStore:
        """The bucket-root store (names carry ``{tenant}/{workspace}/``)."""
        if self.storage == "gcs":
            from servo.store import gcs_store_from_env

            return gcs_store_from_env(self.bucket, self.storage_emulator_host)
        from servo.store import LocalFileStore

        return LocalFileStore(self.data_dir / self.bucket)

    def task_queue(self) -> TaskQueue:
        """Cloud Tasks (real or emulator) in GCS mode; the embedded stack injects its LocalDispatcher."""
        from servo.dispatch import CloudTasksQueue, cloud_tasks_client

        return CloudTasksQueue(cloud_tasks_client(self.tasks_emulator_host), self.project, self.location)
