"""``servo dev`` runs the worker beside the control plane: the hops between them are in-process calls.

The dispatcher hands each envelope to the worker and the worker's callbacks reach the control plane
through one InProcessTransport; neither goes over HTTP (no requests call, no WSGI request), while
everything the hop carried is kept: the run succeeds, the asset's output is captured into its log,
and the CLI's own requests are still served over HTTP.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests
from servo.dev.cli_dev import DevOptions, embedded_stack
from servo.dispatch import HttpTransport, Reply
from servo.settings import Settings
from servo.worker import WorkerApp

from bench._api import deploy, trigger, wait_state

PROJECT = """
from servo.sdk import asset

@asset(namespace="hop")
def a(ctx):
    print("a says hello")
    return {"row_count": 1}

@asset(namespace="hop", deps=["hop.a"])
def b(ctx):
    print("b says hello")
    return {"row_count": 2}
"""


def _project(root: Path) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "assets" / "__init__.py").write_text("")
    (root / "assets" / "hop.py").write_text(textwrap.dedent(PROJECT))
    return root


def test_servo_devs_dispatches_and_callbacks_never_leave_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    over_http: list[str] = []
    wsgi_paths: list[str] = []
    http_deliver = HttpTransport.deliver
    worker_wsgi = WorkerApp.__call__

    def spy_deliver(self: HttpTransport, method: str, url: str, *args: Any, **kwargs: Any) -> Reply:
        over_http.append(url)
        return http_deliver(self, method, url, *args, **kwargs)

    def spy_wsgi(self: WorkerApp, environ: dict[str, Any], start_response: Any) -> Any:
        wsgi_paths.append(environ.get("PATH_INFO", ""))
        return worker_wsgi(self, environ, start_response)

    monkeypatch.setattr(HttpTransport, "deliver", spy_deliver)
    monkeypatch.setattr(WorkerApp, "__call__", spy_wsgi)

    project = _project(tmp_path / "project")
    options = DevOptions(project_dir=project, data_dir=tmp_path / "data", port=0, sweep_interval_s=0)
    with embedded_stack(options, Settings()) as api_url:
        http = requests.Session()
        assert deploy(http, api_url, "default", project, "hop") == 2
        run_id = trigger(http, api_url, "default", "hop.a", downstream=True)
        run, _ = wait_state(http, api_url, "default", run_id, 60, every=0.05)
        assert run["state"] == "SUCCEEDED", run
        logs = http.get(f"{api_url}/v1/workspaces/default/runs/{run_id}/logs", timeout=10)
        assert logs.status_code == 200, logs.text
        text = logs.text
    # The output each asset printed was captured into its own task's log, as over HTTP.
    assert "a says hello" in text and "b says hello" in text
    assert over_http == []
    assert wsgi_paths == []
