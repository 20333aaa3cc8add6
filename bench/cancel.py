"""Cancel latency through ``servo dev`` (issue 17 §8): from the moment ``POST …/cancel`` is sent to the
moment a running asset sees ``ctx.is_cancelled()``, goal ≤ 2 s.

The stack is the one ``servo dev`` starts (``servo.dev.cli_dev.embedded_stack``: its worker, its
heartbeat interval, its embedded control plane), not the bench's timed worker, whose heartbeat
interval is the deployed default. The asset marks, in files, when it started and when it saw the
cancel; both sides read the wall clock, so the figure holds even if the worker ran the asset in
another process.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests
from servo.dev.cli_dev import DevOptions, embedded_stack

from bench import _api
from bench._stats import summary

NAMESPACE = "cancelbench"
ASSET = f"{NAMESPACE}.waiter"
WORKSPACE = "default"
REPS = 5
WAIT_S = 30.0
POLL_S = 0.005


def _module(marks: Path) -> str:
    return f'''import time
from pathlib import Path

from servo.sdk import asset

MARKS = Path({str(marks)!r})


@asset(namespace="{NAMESPACE}")
def waiter(context):
    (MARKS / (context.run_id + ".started")).write_text(repr(time.time()))
    while not context.is_cancelled():
        time.sleep(0.005)
    (MARKS / (context.run_id + ".seen")).write_text(repr(time.time()))
'''


def write_project(root: Path, marks: Path) -> Path:
    assets = root / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    (assets / "cancel_waiter.py").write_text(_module(marks))
    return root


def _wait_for(path: Path, what: str) -> float:
    """The wall-clock time written in ``path``, once the asset has written it."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text()):
            return float(text)
        time.sleep(POLL_S)
    raise _api.BenchError(f"the asset never {what} within {WAIT_S:.0f}s ({path.name})")


def _one(http: requests.Session, api_url: str, marks: Path) -> float:
    run_id = _api.trigger(http, api_url, WORKSPACE, ASSET, downstream=False)
    _wait_for(marks / f"{run_id}.started", "started")
    sent = time.time()
    res = http.post(f"{api_url}/v1/workspaces/{WORKSPACE}/runs/{run_id}/cancel", json={}, timeout=60)
    if res.status_code not in (200, 202):
        raise _api.BenchError(f"cancel of {run_id} answered {res.status_code}: {res.text[:300]}")
    seen = _wait_for(marks / f"{run_id}.seen", "saw the cancel")
    run, _ = _api.wait_state(http, api_url, WORKSPACE, run_id, WAIT_S, every=0.05)
    if run.get("state") != "CANCELLED":
        raise _api.BenchError(f"run {run_id} ended {run.get('state')}, not CANCELLED")
    return seen - sent


def run(root: Path, reps: int = REPS) -> dict[str, Any]:
    """``dev.cancel_seen_p50_ms`` / ``_max_ms`` over ``reps`` cancels of a running asset."""
    marks = root / "marks"
    marks.mkdir(parents=True, exist_ok=True)
    project = write_project(root / "project", marks)
    options = DevOptions(project_dir=project, data_dir=root / "data", port=0)
    with embedded_stack(options) as api_url:
        http = requests.Session()
        _api.deploy(http, api_url, WORKSPACE, project, NAMESPACE)
        latencies = [_one(http, api_url, marks) for _ in range(reps)]
    return summary("dev.cancel_seen", latencies, pcts=(50,))
