"""The faithful local stack (design §9, ``servo dev --emulators``): the deployed code path on emulators.

fake-gcs-server (real GCS JSON API with generation preconditions) notifies the Eventarc stand-in,
which posts finalize CloudEvents to the ``compactor`` function; the fixed Cloud Tasks emulator delivers
dispatches to the worker and due timers to ``timers``; every function runs under functions-framework as
its own process, behind a router that maps paths by the gateway's route table; a scheduler loop plays
Cloud Scheduler. Everything binds 127.0.0.1. Child output goes to ``data_dir/logs/<name>.log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import requests

from servo.core.errors import InvalidInput, ServoError
from servo.dev._ports import free_port
from servo.dev.cli_dev import DEV_HEARTBEAT_INTERVAL_S, DEV_LOG_FLUSH_INTERVAL_S
from servo.dev.eventarc import EventarcBridge
from servo.dev.fake_gcs import FakeGcsServer
from servo.dev.router import Router
from servo.http.routes import FUNCTIONS
from servo.settings import INTERNAL_CREDENTIAL_HEADER

logger = logging.getLogger("servo.dev.emulators")

PROJECT = "servo-local"
LOCATION = "us-central1"
QUEUE = "servo-dispatch"
BUCKET = "servo-local"
_CLOUDEVENT_FUNCTIONS = frozenset({"compactor"})
_READY_TIMEOUT_S = 60.0
_PORT_ATTEMPTS = 3
_ADDRESS_IN_USE = "Address already in use"  # what gunicorn prints when it cannot bind
_SCHEDULER_HEADERS = {"X-CloudScheduler": "true", "X-CloudScheduler-JobName": "servo-timers-sweep"}


def repo_functions_dir() -> Path:
    """``SERVO_FUNCTIONS_DIR``, else ``functions/`` of the source checkout (``shared/servo`` → repo root)."""
    configured = os.environ.get("SERVO_FUNCTIONS_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "functions"


@dataclass
class _Child:
    """A child process with its output file, stopped by SIGTERM then SIGKILL."""

    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    log_path: Path

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()

    def reap(self, deadline: float) -> None:
        """Wait for the exit until ``deadline`` (monotonic), then kill."""
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-3000:].decode("utf-8", "replace")
        return ""


@dataclass
class EmulatorStack:
    """A running emulator stack; build it with :func:`run_emulator_stack`."""

    data_dir: Path
    port: int
    project_dir: Path | None = None
    worker: bool = True
    env_overrides: dict[str, str] = field(default_factory=dict)
    worker_options: dict[str, Any] = field(default_factory=dict)
    sweep_interval_s: float = 3.0
    storage_backend: str = "memory"
    functions_dir: Path = field(default_factory=repo_functions_dir)
    bucket: str = BUCKET
    dispatch_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    function_urls: dict[str, str] = field(default_factory=dict)
    worker_url: str | None = None
    tasks_emulator_host: str | None = None
    _children: list[_Child] = field(default_factory=list)
    _bridge: EventarcBridge | None = None
    _gcs: FakeGcsServer | None = None
    _router: Router | None = None
    _worker: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _sweeper: threading.Thread | None = None

    @property
    def api_url(self) -> str:
        """The one public base URL (the router)."""
        if self._router is None:
            raise ServoError("the emulator stack is not running")
        return self._router.url

    @property
    def storage_endpoint(self) -> str:
        """fake-gcs-server's ``http://127.0.0.1:PORT`` (for ``STORAGE_EMULATOR_HOST`` / a storage client)."""
        if self._gcs is None:
            raise ServoError("the emulator stack is not running")
        return self._gcs.endpoint

    @property
    def bridge(self) -> EventarcBridge:
        if self._bridge is None:
            raise ServoError("the emulator stack is not running")
        return self._bridge

    def log_path(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def start(self) -> EmulatorStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in FUNCTIONS}
        self.function_urls = {name: f"http://127.0.0.1:{p}" for name, p in ports.items()}
        self._router = Router(self.function_urls, port=self.port)
        self._bridge = EventarcBridge(self.function_urls["compactor"]).start()
        notify_env = {"PUBSUB_EMULATOR_HOST": self._bridge.address}
        self._gcs = FakeGcsServer(extra_args=self._gcs_args(), env=notify_env)
        self._gcs.start()
        self._gcs.create_bucket(self.bucket)
        self._start_tasks_emulator()
        if self.project_dir is not None and self.worker:
            self._start_worker(self.project_dir)
        env = self.function_env()
        for name, port in ports.items():
            self._spawn_function(name, port, env)
        for name in ports:
            self._wait_function(name, env)
        self._router.start()
        if self.sweep_interval_s > 0:
            self._sweeper = threading.Thread(target=self._sweep_loop, name="servo-scheduler", daemon=True)
            self._sweeper.start()

    def _gcs_args(self) -> list[str]:
        args = ["-event.pubsub-project-id", PROJECT, "-event.pubsub-topic", "servo-ledger"]
        args += ["-event.list", "finalize"]
        if self.storage_backend == "filesystem":
            root = self.data_dir / "gcs"
            root.mkdir(parents=True, exist_ok=True)
            args += ["-backend", "filesystem", "-filesystem-root", str(root)]
        elif self.storage_backend != "memory":
            raise ServoError(
                f"storage_backend must be 'memory' or 'filesystem', got {self.storage_backend!r}"
            )
        return args

    def function_env(self) -> dict[str, str]:
        """The environment every function process gets (what Terraform sets in GCP)."""
        assert self._router is not None and self._gcs is not None
        api = self._router.url
        env = {
            "SERVO_STORAGE": "gcs",
            "SERVO_BUCKET": self.bucket,
            "STORAGE_EMULATOR_HOST": self._gcs.endpoint,
            "SERVO_TASKS_EMULATOR_HOST": self.tasks_emulator_host or "",
            "SERVO_PROJECT": PROJECT,
            "SERVO_LOCATION": LOCATION,
            "SERVO_TASKS_QUEUE": QUEUE,
            "SERVO_WORKER_URL": self.worker_url or f"{api}/_no_worker",
            "SERVO_TIMERS_URL": f"{api}/v1/timers/fire",
            "SERVO_API_URL": api,
            "SERVO_TOKEN_SECRET": self.token_secret,
            "SERVO_DISPATCH_SECRET": self.dispatch_secret,
            # As Terraform sets it: only the compactor writes state/, so the sweep kicks it.
            "SERVO_SWEEP_KICKS": "1",
            "GOOGLE_CLOUD_PROJECT": PROJECT,
        }
        env.update(self.env_overrides)
        return env

    def _start_tasks_emulator(self) -> None:
        port = free_port()
        self.tasks_emulator_host = f"127.0.0.1:{port}"
        args = [sys.executable, "-m", "servo.dev.tasks_emulator", "--host", "127.0.0.1", "--port", str(port)]
        self._spawn("tasks-emulator", args, {})
        self._wait_tcp("tasks-emulator", port)
        _ensure_queue(self.tasks_emulator_host)

    def _start_worker(self, project_dir: Path) -> None:
        from servo.worker import serve_worker

        options = {**self._worker_defaults(), **self.worker_options}
        secret = self.dispatch_secret
        self._worker = serve_worker(project_dir, "127.0.0.1", 0, dispatch_secret=secret, **options)
        self.worker_url = f"{self._worker.url}/dispatch"

    def _worker_defaults(self) -> dict[str, Any]:
        """What ``servo dev`` gives its worker in embedded mode, from the same SERVO_* variables."""
        env = {**os.environ, **self.env_overrides}
        options: dict[str, Any] = {
            "worker_id": "servo-dev-worker",
            "reload": True,
            "heartbeat_interval_s": DEV_HEARTBEAT_INTERVAL_S,
            "log_flush_interval_s": DEV_LOG_FLUSH_INTERVAL_S,
        }
        for option, name in (
            ("cancel_grace_s", "SERVO_CANCEL_GRACE_SEC"),
            ("heartbeat_interval_s", "SERVO_HEARTBEAT_INTERVAL_SEC"),
        ):
            if env.get(name):
                try:
                    options[option] = float(env[name])
                except ValueError as exc:
                    raise InvalidInput(f"{name} must be a number of seconds, got {env[name]!r}") from exc
        return options

    def _spawn_function(self, name: str, port: int, env: Mapping[str, str]) -> None:
        source = self.functions_dir / name / "main.py"
        if not source.is_file():
            raise ServoError(f"function {name!r} has no entry point at {source}")
        args = [str(Path(sys.executable).parent / "functions-framework"), "--target", name]
        args += ["--source", str(source), "--host", "127.0.0.1", "--port", str(port)]
        if name in _CLOUDEVENT_FUNCTIONS:
            args += ["--signature-type", "cloudevent"]
        self._spawn(name, args, env)

    def _wait_function(self, name: str, env: Mapping[str, str]) -> None:
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                self._wait_http(name, self.function_urls[name])
                return
            except ServoError:
                child = self._child(name)
                if attempt == _PORT_ATTEMPTS or _ADDRESS_IN_USE not in child.tail():
                    raise
            # Another process took the port between choosing it and the function binding it.
            child.reap(time.monotonic())
            self._children.remove(child)
            port = free_port()
            self.function_urls[name] = f"http://127.0.0.1:{port}"
            assert self._router is not None and self._bridge is not None
            self._router.retarget(name, self.function_urls[name])
            if name == "compactor":
                self._bridge.target_url = self.function_urls[name]
            logger.warning("function %s lost its port; starting it again on %d", name, port)
            self._spawn_function(name, port, env)

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str]) -> None:
        path = self.log_path(name)
        log = path.open("ab")
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=self.data_dir,
        )
        self._children.append(_Child(name, proc, log, path))

    def _child(self, name: str) -> _Child:
        return next(c for c in self._children if c.name == name)

    def _wait(self, name: str, probe: Callable[[], bool]) -> None:
        child = self._child(name)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise ServoError(f"{name} exited with {child.proc.returncode}:\n{child.tail()}")
            if probe():
                return
            time.sleep(0.05)
        raise ServoError(f"{name} not ready within {_READY_TIMEOUT_S:.0f}s:\n{child.tail()}")

    def _wait_http(self, name: str, url: str) -> None:
        def probe() -> bool:
            try:
                requests.get(f"{url}/healthz", timeout=2)  # any HTTP answer means it serves
                return True
            except requests.RequestException:
                return False

        self._wait(name, probe)

    def _wait_tcp(self, name: str, port: int) -> None:
        def probe() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        self._wait(name, probe)

    def scheduler_headers(self) -> dict[str, str]:
        """What Cloud Scheduler sends with the sweep: its own headers and the internal credential."""
        return {**_SCHEDULER_HEADERS, INTERNAL_CREDENTIAL_HEADER: self.dispatch_secret}

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.sweep_interval_s):
            try:
                requests.post(
                    f"{self.api_url}/v1/timers/sweep", json={}, headers=self.scheduler_headers(), timeout=60
                )
            except requests.RequestException as exc:
                logger.warning(f"sweep tick failed ({exc}); the next tick retries")

    def stop(self) -> None:
        """Stop everything that was started, in reverse order; safe to call twice."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=2)  # a daemon thread: a hung sweep must not hold the shutdown
            self._sweeper = None
        if self._router is not None:
            self._router.stop()
        if self._bridge is not None:
            # First: finalize events still queued are abandoned quietly instead of retried against
            # functions that are going away (the ledger keeps the objects; the next start folds them).
            self._bridge.stop()
        # Signal every child first so their graceful shutdowns overlap, then reap them.
        for child in self._children:
            child.terminate()
        deadline = time.monotonic() + 5
        for child in self._children:
            child.reap(deadline)
        self._children.clear()
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        if self._gcs is not None:
            self._gcs.stop()

    def __enter__(self) -> EmulatorStack:
        return self if self._router is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _ensure_queue(host: str) -> None:
    """Create the dispatch queue in the emulator (ALREADY_EXISTS is fine)."""
    import grpc
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(host)
    try:
        client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        parent = f"projects/{PROJECT}/locations/{LOCATION}"
        with contextlib.suppress(AlreadyExists):
            client.create_queue(parent=parent, queue=tasks_v2.Queue(name=f"{parent}/queues/{QUEUE}"))
    finally:
        channel.close()


def run_emulator_stack(
    project_dir: Path | None,
    data_dir: Path,
    port: int,
    *,
    worker: bool = True,
    env_overrides: Mapping[str, str] | None = None,
    worker_options: Mapping[str, Any] | None = None,
    sweep_interval_s: float = 3.0,
    storage_backend: str = "memory",
) -> EmulatorStack:
    """Start the emulator stack and wait until every part answers; use it as a context manager.

    Args:
        project_dir: a project whose assets the worker serves; None starts no worker (then
            ``SERVO_WORKER_URL`` in ``env_overrides`` says where dispatches go).
        data_dir: where child logs (and the filesystem backend's objects) are written.
        port: the router's port (0 = any free port); ``.api_url`` tells which.
        worker: start the worker for ``project_dir``.
        env_overrides: extra environment for the function processes (e.g. ``SERVO_HEARTBEAT_TIMEOUT_SEC``).
        sweep_interval_s: how often the scheduler loop POSTs the timers sweep (0 = never).
        storage_backend: fake-gcs-server's ``memory`` (default) or ``filesystem`` under ``data_dir/gcs``.
        worker_options: extra keyword arguments for ``serve_worker`` (``worker_id``,
            ``heartbeat_interval_s``, ``cancel_grace_s``, ...); by default the worker takes
            ``SERVO_CANCEL_GRACE_SEC`` and ``SERVO_HEARTBEAT_INTERVAL_SEC`` from the environment.

    Raises:
        ServoError: a part did not start; everything already started has been stopped.
    """
    overrides = dict(env_overrides or {})
    stack = EmulatorStack(
        data_dir=data_dir,
        port=port,
        project_dir=project_dir,
        worker=worker,
        env_overrides=overrides,
        sweep_interval_s=sweep_interval_s,
        storage_backend=storage_backend,
        worker_options=dict(worker_options or {}),
    )
    # A caller that runs its own worker shares the secrets with it through the overrides.
    stack.dispatch_secret = overrides.get("SERVO_DISPATCH_SECRET", stack.dispatch_secret)
    stack.token_secret = overrides.get("SERVO_TOKEN_SECRET", stack.token_secret)
    return stack.start()
