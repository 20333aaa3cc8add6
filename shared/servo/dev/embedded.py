"""The embedded local stack (design §9): every function behind one router, in one process.

Local-file store, compaction right after ledger writes by a group commit (a writer that reads back
what it wrote waits for the publish), the controller's side effects on a background thread (as
Eventarc would run them asynchronously), a local dispatcher with Cloud Tasks semantics, and a
scheduler loop calling the sweep. The code path is the deployed one: the same
``servo.http.app.respond`` and the same services.

The API is served over HTTP and, through an in-process transport, to this process: the dispatcher's
deliveries (due timers to the API, tasks to a worker mounted on the same transport, as ``servo dev``
mounts its own) and that worker's callbacks skip the socket. A worker elsewhere is reached over HTTP.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer

from servo.dev.group_commit import GroupCommit
from servo.dev.local_api import LocalApi
from servo.dev.local_server import DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT_S, BoundedWSGIServer
from servo.dispatch import InProcessTransport
from servo.services.context import ServiceContext, wall_clock_ms
from servo.services.orchestrate import Changes
from servo.settings import (
    DEFAULT_GROUP_COMMIT_PROGRESS_WINDOW_MS,
    DEFAULT_GROUP_COMMIT_WINDOW_MS,
    Settings,
)

logger = logging.getLogger("servo.dev")


class InlineCompactor:
    """Compacts right after a write (by group commit) and runs side effects on one background thread.

    Side effects are coalesced per workspace so a burst of callbacks costs one controller pass, not
    one per event.
    """

    def __init__(
        self,
        window_ms: int = DEFAULT_GROUP_COMMIT_WINDOW_MS,
        progress_window_ms: int = DEFAULT_GROUP_COMMIT_PROGRESS_WINDOW_MS,
    ) -> None:
        self._cv = threading.Condition()
        self._pending: dict[tuple[str, str], Changes] = {}
        self._busy = 0
        self._stopped = False
        self._ctx: ServiceContext | None = None
        self._group = GroupCommit(self._schedule, window_ms=window_ms, progress_window_ms=progress_window_ms)
        self._thread = threading.Thread(target=self._loop, name="servo-effects", daemon=True)
        self._thread.start()

    def hook(
        self,
        ctx: ServiceContext,
        tenant_id: str,
        workspace_id: str,
        names: Sequence[str],
        *,
        await_publish: bool,
        urgent: bool = True,
    ) -> None:
        self._group.commit(ctx, (tenant_id, workspace_id), names, await_publish=await_publish, urgent=urgent)

    def settle(self, tenant_id: str, workspace_id: str) -> None:
        self._group.settle((tenant_id, workspace_id))

    def commits(self) -> int:
        return self._group.commits()

    def _schedule(self, ctx: ServiceContext, scope: tuple[str, str], changed: Changes) -> None:
        with self._cv:
            self._ctx = ctx
            self._pending[scope] = self._pending.get(scope, Changes()) | changed
            self._cv.notify()

    def _loop(self) -> None:
        from servo.services.orchestrate import act

        while True:
            with self._cv:
                while not self._pending and not self._stopped:
                    self._cv.wait()
                if self._stopped:
                    return
                (scope, changes) = self._pending.popitem()
                ctx = self._ctx
                self._busy += 1
            try:
                assert ctx is not None
                # This process is the state's only publisher: the head it last published is the head.
                act(ctx, scope[0], scope[1], changes, ctx.last_seen_snapshot(*scope))
            except Exception:
                logger.exception("side effects failed; the sweep will retry them")
            finally:
                with self._cv:
                    self._busy -= 1
                    self._cv.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Until compaction and side effects are both idle: each feeds the other, so wait until a
        pass over both saw no new commit."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self._group.commits()
            if not self._group.wait_idle(_left(deadline)):
                return False
            with self._cv:
                if not self._cv.wait_for(lambda: not self._pending and not self._busy, _left(deadline)):
                    return False
            if self._group.commits() == seen:
                return True

    def stop(self) -> None:
        # The group commit first: its last round may still schedule side effects (left to the sweep).
        self._group.stop()
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        self._thread.join(timeout=5)


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def router_app(ctx_provider: Callable[[], ServiceContext]) -> LocalApi:
    """The WSGI app serving every route of the route table (``LocalApi`` over HTTP)."""
    return LocalApi(ctx_provider)


@dataclass
class EmbeddedStack:
    """The control plane of ``servo dev`` (the worker is started beside it by the dev command)."""

    data_dir: Path
    port: int = 0
    worker_url: str | None = None
    sweep_interval_s: float = 5.0
    settings_overrides: dict[str, Any] = field(default_factory=dict)
    clock_ms: Callable[[], int] = wall_clock_ms
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    connection_timeout_s: float = DEFAULT_TIMEOUT_S
    # The worker runs in this process (``servo dev``): every attempt its data shows RUNNING at start
    # was run by a worker that died with the previous process (see servo.dev.recovery).
    owns_worker: bool = False
    # The dispatcher's transport; the API is mounted on it at start (a worker of this process is
    # mounted by whoever starts it). None: a transport of the stack's own (others over HTTP).
    transport: InProcessTransport | None = None
    ctx: ServiceContext | None = None
    _server: BaseWSGIServer | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _compactor: InlineCompactor | None = None
    _dispatcher: Any = None

    @property
    def api_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> EmbeddedStack:
        from servo.dispatch import LocalDispatcher
        from servo.store import LocalFileStore

        started_at_ms = self.clock_ms()
        ctx_ref: list[ServiceContext] = []
        api = LocalApi(lambda: ctx_ref[0])
        self._server = BoundedWSGIServer(
            "127.0.0.1",
            self.port,
            api,  # the same endpoint over HTTP and in process
            max_connections=self.max_connections,
            timeout_s=self.connection_timeout_s,
        )
        api_url = f"http://127.0.0.1:{self._server.server_port}"
        settings = replace(
            Settings(),
            storage="local",
            data_dir=self.data_dir,
            api_url=api_url,
            timers_url=f"{api_url}/v1/timers/fire",
            worker_url=self.worker_url or "http://127.0.0.1:8081/dispatch",
            # A chain's hop costs no publish: the completing callback dispatches what it made ready,
            # and the group commit publishes when its window says (services/callback_dispatch).
            # Its trigger dispatches a run's roots so (the roots' callbacks reach this process), and
            # a short run's creation shares the publish of its end.
            **{"callback_dispatch": True, "trigger_dispatch": True, **self.settings_overrides},
        )
        self._compactor = InlineCompactor(
            settings.group_commit_window_ms, settings.group_commit_progress_window_ms
        )
        if self.transport is None:
            self.transport = InProcessTransport()
        self.transport.mount(api_url, api)
        self._dispatcher = LocalDispatcher(transport=self.transport)
        self._dispatcher.start()
        self.ctx = ServiceContext(
            settings=settings,
            store=LocalFileStore(self.data_dir / settings.bucket),
            clock_ms=self.clock_ms,
            queue=self._dispatcher,
            after_ledger_write=self._compactor.hook,
            before_read=self._compactor.settle,
        )
        ctx_ref.append(self.ctx)
        serve = threading.Thread(target=self._server.serve_forever, name="servo-api", daemon=True)
        serve.start()
        self._threads.append(serve)
        from servo.dev.recovery import recover

        # The previous process's queue and worker died with it: what they held is driven again now.
        recover(self.ctx, owns_worker=self.owns_worker, started_at_ms=started_at_ms)
        if self.sweep_interval_s > 0:
            sweeper = threading.Thread(target=self._sweep_loop, name="servo-scheduler", daemon=True)
            sweeper.start()
            self._threads.append(sweeper)
        return self

    def _sweep_loop(self) -> None:
        from servo.services.timers import sweep

        while not self._stop.wait(self.sweep_interval_s):
            try:
                assert self.ctx is not None
                sweep(self.ctx, {})
            except Exception:
                logger.exception("sweep failed; next tick retries")

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until compaction, side effects and deliveries are idle together: a delivery's callbacks
        commit again, so repeat until a pass saw no new commit."""
        assert self._compactor is not None
        deadline = time.monotonic() + timeout
        while True:
            seen = self._compactor.commits()
            if not self._compactor.wait_idle(_left(deadline)):
                return False
            if not self._dispatcher.wait_idle(_left(deadline)):
                return False
            if self._compactor.commits() == seen:
                return True

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            if self.transport is not None:
                self.transport.unmount(self.api_url)
        if self._dispatcher is not None:
            self._dispatcher.stop(5.0)
        if self._compactor is not None:
            self._compactor.stop()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
