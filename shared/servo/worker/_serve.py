"""Serving a WorkerApp: a threaded werkzeug server (servo dev, servo worker) and the Cloud Run entry."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from servo.core.errors import InvalidInput
from servo.sdk import code_version, discover_assets
from servo.sdk._sensors import SensorDefinition
from servo.worker._invoke import AssetFunction
from servo.worker._server import WorkerApp

logger = logging.getLogger("servo.worker")


@dataclass(frozen=True, slots=True)
class WorkerHandle:
    """A running worker server; ``url`` is its base URL (POST ``{url}/dispatch``)."""

    url: str
    app: WorkerApp
    _server: BaseWSGIServer
    _thread: threading.Thread

    def stop(self) -> None:
        """Stop accepting requests and wait for the serving thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve_app(app: WorkerApp, host: str = "127.0.0.1", port: int = 0) -> WorkerHandle:
    """Serve ``app`` on ``host:port`` (0 = any free port) from a background thread, one thread per request."""
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="servo-worker-http", daemon=True)
    thread.start()
    return WorkerHandle(f"http://{host}:{server.server_port}", app, server, thread)


def project_assets(project_root: Path) -> dict[str, AssetFunction]:
    """The project's assets by key, found by the SDK's discovery.

    A module that fails to import is logged, not fatal: the other assets are still served, and a task
    of a missing asset is reported FAILED (CONFIGURATION) naming it.
    """
    found = discover_assets(project_root)
    for problem in found.problems:
        logger.warning("asset discovery: %s", problem)
    return dict(found)


def project_sensors(project_root: Path) -> dict[str, SensorDefinition]:
    """The project's sensors by id (discovery problems are logged, as for assets)."""
    found = discover_assets(project_root)
    return {d.id: d for d in found.sensor_definitions()}


def load_project(project_root: Path) -> tuple[dict[str, AssetFunction], str]:
    """The project's assets and the version of the code they were loaded from (see ``code_version``).

    The version is taken first: a file edited while the modules load makes the version stale, so the
    worker refuses the new deploy's tasks (and reloads again) rather than run unversioned code.
    """
    version = code_version(project_root)
    return project_assets(project_root), version


def serve_worker(
    project_root: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    dispatch_secret: str,
    reload: bool = False,
    worker_id: str = "servo-worker",
    tenant_id: str | None = None,
    workspace_id: str | None = None,
    api_url: str | None = None,
    **options: Any,
) -> WorkerHandle:
    """Discover ``project_root``'s assets and serve them; ``options`` go to WorkerApp.

    ``reload``: when a task of another code version arrives, load the project again from disk first
    (``servo dev``: a ``servo deploy`` of edited code reaches the running worker).
    """
    assets, version = load_project(project_root)
    app = WorkerApp(
        assets,
        code_version=version,
        loader=(lambda: load_project(project_root)) if reload else None,
        dispatch_secret=dispatch_secret,
        worker_id=worker_id,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
        api_url=api_url,
        sensors=lambda: project_sensors(project_root),
        **options,
    )
    return serve_app(app, host, port)


def wsgi_app_from_env(environ: Mapping[str, str] | None = None) -> WorkerApp:
    """The Cloud Run entry (e.g. ``gunicorn 'servo.worker:wsgi_app_from_env()'``).

    Reads SERVO_PROJECT_DIR (default: the working directory), SERVO_DISPATCH_SECRET (required),
    SERVO_WORKER_ID (default: the Cloud Run revision, else ``servo-worker``) and, optionally,
    SERVO_TENANT / SERVO_WORKSPACE / SERVO_API_URL to pin the accepted scope.

    Raises:
        InvalidInput: SERVO_DISPATCH_SECRET is not set.
    """
    env = os.environ if environ is None else environ
    secret = env.get("SERVO_DISPATCH_SECRET", "")
    if not secret:
        raise InvalidInput(
            "SERVO_DISPATCH_SECRET must be set: the worker refuses every unauthenticated dispatch"
        )
    root = Path(env.get("SERVO_PROJECT_DIR") or os.getcwd())
    assets, version = load_project(root)
    return WorkerApp(
        assets,
        code_version=version,
        dispatch_secret=secret,
        worker_id=env.get("SERVO_WORKER_ID") or env.get("K_REVISION") or "servo-worker",
        tenant_id=env.get("SERVO_TENANT") or None,
        workspace_id=env.get("SERVO_WORKSPACE") or None,
        api_url=env.get("SERVO_API_URL") or None,
        sensors=lambda: project_sensors(root),
    )
