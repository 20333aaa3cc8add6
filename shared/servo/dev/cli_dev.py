"""``servo dev``: the worker and the embedded control plane in the foreground, until Ctrl-C/SIGTERM.

The worker starts first because the control plane's dispatcher must know where to deliver. Both
serve HTTP (the CLI, a curl), and each is also mounted on one in-process transport, so the hops
between them (a dispatch, the worker's callbacks) are calls, not requests over loopback. On a
signal everything started here is stopped in reverse order, so no thread or child process outlives
the command.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from servo.core.errors import ServoError
from servo.settings import Settings

# Settings the developer may tune through SERVO_* variables (e.g. a short cancel grace in tests);
# everything else of the embedded stack (storage, URLs) is decided by the stack itself.
_ENV_TUNABLE = (
    "token_secret",
    "dispatch_secret",
    "api_token",
    "heartbeat_timeout_sec",
    "cancel_grace_sec",
    "group_commit_window_ms",
    "group_commit_progress_window_ms",
)


# Locally nothing is billed per call: the worker's output reaches `servo logs --follow` within a
# second, and a heartbeat (which carries progress out and a cancel in) goes every second.
DEV_LOG_FLUSH_INTERVAL_S = 1.0
DEV_HEARTBEAT_INTERVAL_S = 1.0


class Stoppable(Protocol):
    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DevOptions:
    project_dir: Path
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    worker_port: int = 0
    sweep_interval_s: float = 1.0
    heartbeat_interval_s: float | None = None  # None: DEV_HEARTBEAT_INTERVAL_S


def settings_overrides(env_settings: Settings) -> dict[str, Any]:
    """The env-tunable settings that differ from the defaults (passed to the embedded stack)."""
    default = Settings()
    names = {f.name for f in fields(Settings)}
    return {
        name: getattr(env_settings, name)
        for name in _ENV_TUNABLE
        if name in names and getattr(env_settings, name) != getattr(default, name)
    }


@contextmanager
def embedded_stack(options: DevOptions, env_settings: Settings | None = None) -> Iterator[str]:
    """Start the project's worker and the embedded control plane; yields the API URL."""
    from servo.dev.embedded import EmbeddedStack
    from servo.dispatch import InProcessTransport
    from servo.worker import serve_worker

    settings = env_settings or Settings.from_env()
    transport = InProcessTransport()
    with ExitStack() as stack:
        worker = serve_worker(
            options.project_dir,
            "127.0.0.1",
            options.worker_port,
            dispatch_secret=settings.dispatch_secret,
            worker_id="servo-dev-worker",
            reload=True,
            cancel_grace_s=float(settings.cancel_grace_sec),
            heartbeat_interval_s=options.heartbeat_interval_s or DEV_HEARTBEAT_INTERVAL_S,
            log_flush_interval_s=DEV_LOG_FLUSH_INTERVAL_S,
            transport=transport,
        )
        stack.callback(worker.stop)
        transport.mount(worker.url, worker.app)
        control = EmbeddedStack(
            data_dir=options.data_dir,
            port=options.port,
            worker_url=f"{worker.url.rstrip('/')}/dispatch",
            sweep_interval_s=options.sweep_interval_s,
            settings_overrides=settings_overrides(settings),
            owns_worker=True,
            transport=transport,
        )
        control.start()
        stack.callback(control.stop)
        yield control.api_url


@contextmanager
def emulator_stack(options: DevOptions) -> Iterator[str]:
    """The same control plane through fake-gcs-server, the Cloud Tasks emulator and functions-framework."""
    try:
        from servo.dev.emulators import run_emulator_stack
    except ImportError as exc:
        raise ServoError(f"`servo dev --emulators` is not available in this build ({exc})") from None
    # The filesystem backend keeps the bucket under --data, so state survives a restart as in
    # embedded mode; the endpoint is printed so tools (and tests) can read the bucket directly.
    handle = run_emulator_stack(
        options.project_dir,
        options.data_dir,
        options.port,
        sweep_interval_s=options.sweep_interval_s,
        storage_backend="filesystem",
    )
    try:
        print(f"Storage emulator at {handle.storage_endpoint} (bucket {handle.bucket})", flush=True)
        yield str(handle.api_url)
    finally:
        handle.stop()


def wait_for_signal(on_ready: Callable[[], None] | None = None) -> int:
    """Block until SIGINT or SIGTERM; returns the signal number."""
    received: list[int] = []
    done = threading.Event()

    def _handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        done.set()

    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_ready is not None:
            on_ready()
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0]


def run_dev(options: DevOptions, *, emulators: bool, announce: Callable[[str], None]) -> None:
    """Run the local stack until a signal, then stop every part of it."""
    from servo.dev.data_lock import hold_data_dir

    with hold_data_dir(options.data_dir):
        print(f"Data directory {options.data_dir}", flush=True)
        if not emulators:
            _upgrade_local_bucket(options.data_dir / Settings().bucket)
        stack = emulator_stack(options) if emulators else embedded_stack(options)
        with stack as api_url:
            wait_for_signal(lambda: announce(api_url))


def _upgrade_local_bucket(bucket: Path) -> None:
    """Objects an earlier Servo wrote in its private format become plain files, so nothing looks lost."""
    from servo.store.local import upgrade_legacy_layout

    upgraded = upgrade_legacy_layout(bucket) if bucket.is_dir() else 0
    if upgraded:
        print(f"Upgraded {upgraded} objects of {bucket} to plain files", flush=True)
