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


_WORKER_URL = "http://127.0.0.1:8081/dispatch"
_TIMERS_URL = "http://127.0.0.1:8080/v1/timers/fire"
_API_URL = "http://127.0.0.1:8080"


DEFAULT_GROUP_COMMIT_WINDOW_MS = 50
# How long writes that unblock nothing (dispatch records, starts, heartbeats) may wait for company.
DEFAULT_GROUP_COMMIT_PROGRESS_WINDOW_MS = 500
# A bucket holds a whole day's runs, so moving ended runs one by one would cost a busy day's bucket per
# run end; the manifest carries at most this many ended entries (a few hundred bytes each).
DEFAULT_ENDED_RUNS_PER_INDEX_WRITE = 32


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
    tasks_emulator_host: str | None = None
    # Where Cloud Tasks deliver: the worker (dispatch envelopes) and the timers function (due timers).
    worker_url: str = _WORKER_URL
    timers_url: str = _TIMERS_URL
    api_url: str = _API_URL  # the callbackBaseUrl handed to workers
    tasks_service_account: str | None = None
    # GCP: the sweep re-kicks the compactor (by writing a ledger/kicks/ object whose finalize event
    # reaches it) instead of compacting itself, so that only the compactor writes state/ (design §2).
    sweep_kicks: bool = False
    token_secret: bytes = field(default=b"servo-local-task-token-secret-0123456789", repr=False)
    dispatch_secret: str = field(default="servo-local-dispatch-secret", repr=False)
    api_token: str | None = field(default=None, repr=False)  # optional static bearer for the local API
    tenant_secret: bytes = field(default=b"", repr=False)
    # The tenant a request acts for when no X-Servo-Tenant header names one (single-tenant deployments).
    default_tenant: str = "default"
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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        storage = e.get("SERVO_STORAGE", "local")
        if storage not in ("local", "gcs"):
            raise InvalidInput(f"SERVO_STORAGE must be 'local' or 'gcs', got {storage!r}")
        secret = e.get("SERVO_TOKEN_SECRET")
        return cls(
            storage=storage,
            data_dir=Path(e.get("SERVO_DATA_DIR", ".servo-dev/data")),
            bucket=e.get("SERVO_BUCKET", "servo-local"),
            storage_emulator_host=e.get("STORAGE_EMULATOR_HOST") or None,
            project=e.get("SERVO_PROJECT", "servo-local"),
            location=e.get("SERVO_LOCATION", "us-central1"),
            queue=e.get("SERVO_TASKS_QUEUE", "default-queue"),
            tasks_emulator_host=e.get("SERVO_TASKS_EMULATOR_HOST") or None,
            worker_url=e.get("SERVO_WORKER_URL", _WORKER_URL),
            timers_url=e.get("SERVO_TIMERS_URL", _TIMERS_URL),
            api_url=e.get("SERVO_API_URL", _API_URL).rstrip("/"),
            tasks_service_account=e.get("SERVO_TASKS_SERVICE_ACCOUNT") or None,
            sweep_kicks=e.get("SERVO_SWEEP_KICKS", "") in ("1", "true", "yes"),
            token_secret=secret.encode() if secret else b"servo-local-task-token-secret-0123456789",
            dispatch_secret=e.get("SERVO_DISPATCH_SECRET", "servo-local-dispatch-secret"),
            api_token=e.get("SERVO_API_TOKEN") or None,
            tenant_secret=base64.b64decode(e.get("SERVO_TENANT_SECRET_B64", "")),
            default_tenant=e.get("SERVO_TENANT", "default"),
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
        )

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
