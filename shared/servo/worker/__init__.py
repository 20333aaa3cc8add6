"""The worker runtime: dispatch envelope → ``@asset`` function → started/heartbeat/logs/completed.

``servo worker`` and ``servo dev`` call ``serve_worker``; Cloud Run serves ``wsgi_app_from_env()``.
"""

from servo.worker._capture import CapturedOutput, capture_output
from servo.worker._invoke import AssetFunction, Reporter
from servo.worker._runner import AttemptResult, RunnerConfig, run_attempt
from servo.worker._serve import (
    WorkerHandle,
    load_project,
    project_assets,
    serve_app,
    serve_worker,
    wsgi_app_from_env,
)
from servo.worker._server import WorkerApp

__all__ = [
    "AssetFunction",
    "AttemptResult",
    "CapturedOutput",
    "Reporter",
    "RunnerConfig",
    "WorkerApp",
    "WorkerHandle",
    "capture_output",
    "load_project",
    "project_assets",
    "run_attempt",
    "serve_app",
    "serve_worker",
    "wsgi_app_from_env",
]
