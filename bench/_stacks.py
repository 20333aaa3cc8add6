"""The two local stacks under test, each with the real worker app (timed).

Embedded: ``EmbeddedStack`` in this process with the worker beside it, as ``servo dev`` runs them:
both mounted on one in-process transport, so dispatches and callbacks are calls, not HTTP requests
(the worker still serves HTTP too). Its bucket-root store is wrapped, before the first request,
in ``PrefixTally`` (ops by prefix) and ``servo.store.CountingStore`` (the port's own counter).
Emulators: ``run_emulator_stack`` (fake-gcs-server, Cloud Tasks emulator, Eventarc stand-in, one
functions-framework process per function), the worker on a real HTTP port; its store lives in other
processes, so its operations are counted on the wire, by ``CountingGcsProxy`` between the functions and
fake-gcs-server.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servo.dispatch import EnvOnceSession, HttpTransport, InProcessTransport, Transport
from servo.settings import INTERNAL_CREDENTIAL_HEADER as INTERNAL
from servo.store import CountingStore
from servo.worker import WorkerHandle, project_assets, serve_app

from bench._gcs_proxy import CountingGcsProxy
from bench._instrument import PrefixTally, TimedTransport, TimedWorkerApp, Timeline

EMULATOR_QUIET_S = 2.0


@dataclass
class Target:
    """A running control plane plus its timed worker."""

    mode: str
    api_url: str
    timeline: Timeline
    wait_idle: Callable[[float], bool]
    tally: PrefixTally | CountingGcsProxy | None = None
    counting: CountingStore | None = None
    # What a caller of an internal route (the sweep) sends: the stack's internal credential.
    internal_headers: dict[str, str] = field(default_factory=dict)


@contextmanager
def _timed_worker(
    project: Path, secret: str, transport: Transport
) -> Iterator[tuple[WorkerHandle, Timeline]]:
    timeline = Timeline()
    app = TimedWorkerApp(
        project_assets(project),
        dispatch_secret=secret,
        worker_id="bench-worker",
        transport=TimedTransport(transport, timeline),
    )
    app.timeline = timeline
    handle = serve_app(app)
    try:
        yield handle, timeline
    finally:
        handle.stop()


@contextmanager
def timed_worker(project: Path, secret: str) -> Iterator[tuple[str, Timeline]]:
    """The worker over HTTP (its callbacks too), for a control plane in other processes."""
    with _timed_worker(project, secret, HttpTransport(EnvOnceSession())) as (handle, timeline):
        yield f"{handle.url}/dispatch", timeline


@contextmanager
def embedded(project: Path, data_dir: Path, settings: dict[str, Any] | None = None) -> Iterator[Target]:
    """The embedded stack; ``settings`` overrides its settings (e.g. the group commit's windows)."""
    from servo.dev.embedded import EmbeddedStack

    secret = secrets.token_urlsafe(16)
    transport = InProcessTransport()
    with _timed_worker(project, secret, transport) as (worker, timeline):
        transport.mount(worker.url, worker.app)
        # No sweep loop: the happy path never needs it, and its reads would blur the per-task counts.
        stack = EmbeddedStack(
            data_dir,
            0,
            worker_url=f"{worker.url}/dispatch",
            sweep_interval_s=0,
            settings_overrides={"dispatch_secret": secret, **(settings or {})},
            transport=transport,
        ).start()
        try:
            assert stack.ctx is not None
            tally = PrefixTally(stack.ctx.store)
            counting = CountingStore(tally)
            # ServiceContext is frozen and built inside start(); the request handlers, the inline
            # compactor and the side-effect thread all read ``ctx.store`` per call, and no request has
            # been made yet, so swapping it here counts every operation of the benchmark.
            object.__setattr__(stack.ctx, "store", counting)
            yield Target(
                "embedded", stack.api_url, timeline, stack.wait_idle, tally, counting, {INTERNAL: secret}
            )
        finally:
            stack.stop()


@contextmanager
def emulators(
    project: Path,
    data_dir: Path,
    mode: str = "emulators",
    env: dict[str, str] | None = None,
    *,
    count_ops: bool = False,
) -> Iterator[Target]:
    """The emulator stack; ``env`` adds function settings (e.g. SERVO_MIN_PUBLISH_INTERVAL_MS).

    With ``count_ops`` the functions reach fake-gcs-server through ``CountingGcsProxy``, which counts
    their operations on the wire, and the stack is idle once no storage request has come for two
    seconds (a compaction waits at most one second for the publish interval). The proxy runs in this
    process, beside the timed worker, so timed figures come from a stack without it.
    """
    from servo.dev.emulators import run_emulator_stack

    secret = secrets.token_urlsafe(16)
    proxy = CountingGcsProxy().start() if count_ops else None
    try:
        with timed_worker(project, secret) as (worker_url, timeline):
            overrides = {"SERVO_WORKER_URL": worker_url, "SERVO_DISPATCH_SECRET": secret, **(env or {})}
            if proxy is not None:
                overrides["STORAGE_EMULATOR_HOST"] = proxy.host
            # The sweep ticks once a minute, as Cloud Scheduler would; not while operations are
            # counted (the happy path never needs it, and its operations would blur the counts).
            with run_emulator_stack(
                None,
                data_dir,
                0,
                worker=False,
                env_overrides=overrides,
                sweep_interval_s=0 if proxy is not None else 60,
            ) as stack:
                if proxy is None:
                    yield Target(
                        mode, stack.api_url, timeline, lambda _t: True, internal_headers={INTERNAL: secret}
                    )
                    return
                proxy.set_upstream(stack.storage_endpoint)
                counter = proxy
                yield Target(
                    mode,
                    stack.api_url,
                    timeline,
                    lambda t: counter.wait_quiet(EMULATOR_QUIET_S, t),
                    proxy,
                    internal_headers={INTERNAL: secret},
                )
    finally:
        if proxy is not None:
            proxy.stop()
