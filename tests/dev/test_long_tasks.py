"""An attempt that outlives its dispatch deadline runs once (issue 15 item 6).

Cloud Tasks gives up on a delivery after its dispatch deadline (30 min for the worker) and delivers the
task again, possibly to another instance, while the first delivery still runs; the sweep's repair of a
dispatch stuck in CREATED enqueues it again under a fresh name. The rule (services/callbacks.py): the
first ``started`` of an attempt claims it for its delivery (``executionId``), and a ``started`` from any
other delivery of that attempt is refused 409 ``attempt_already_started``, so the worker acknowledges it
without running the asset. Here the deadline is shortened to one second and two worker instances take
the deliveries in turn.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

import requests
from servo.dev.embedded import EmbeddedStack
from servo.sdk import asset
from servo.worker import WorkerApp
from werkzeug.serving import make_server

SECRET = "long-task-dispatch-secret"
RUNS: list[str] = []
RELEASE = threading.Event()


@asset(namespace="long")
def job(ctx: Any) -> dict[str, Any]:
    RUNS.append(f"attempt {ctx.attempt}")
    # Runs well past the shortened dispatch deadline, so the queue delivers the task again meanwhile.
    assert RELEASE.wait(timeout=30)
    return {"row_count": 1}


class CallbackLog(requests.Session):
    """The worker's real callback session, keeping each ``started`` answer the control plane gave."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[tuple[int, str]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        res = super().request(method, url, *args, **kwargs)
        if str(url).endswith("/started"):
            self.started.append((res.status_code, res.text))
        return res


class RoundRobin:
    """Two worker instances behind one URL, as Cloud Run spreads deliveries over instances."""

    def __init__(self, *apps: WorkerApp) -> None:
        self._apps = apps
        self._turn = itertools.count()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._apps[next(self._turn) % len(self._apps)](environ, start_response)


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_task_running_past_its_dispatch_deadline_is_not_run_by_the_redelivery(tmp_path: Path) -> None:
    sessions = [CallbackLog(), CallbackLog()]
    apps = [
        WorkerApp(
            {"long.job": job},
            dispatch_secret=SECRET,
            worker_id=f"instance-{i}",
            heartbeat_interval_s=0.2,
            callback_backoff_s=0.01,
            http=sessions[i - 1],
        )
        for i in (1, 2)
    ]
    server = make_server("127.0.0.1", 0, RoundRobin(*apps), threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    overrides = {"dispatch_secret": SECRET, "worker_dispatch_deadline_s": 1}
    stack = EmbeddedStack(
        tmp_path, worker_url=f"http://127.0.0.1:{server.server_port}/dispatch", settings_overrides=overrides
    )
    try:
        stack.start()
        api = stack.api_url
        manifest = {
            "manifestVersion": "1.0",
            "codeVersionId": "cv1",
            "assets": [{"key": {"namespace": "long", "name": "job"}, "execution": {"maxRetries": 0}}],
        }
        assert requests.post(f"{api}/v1/workspaces/default/manifests", json=manifest, timeout=10).ok
        res = requests.post(f"{api}/v1/workspaces/default/runs", json={"selection": ["long.job"]}, timeout=10)
        run_id = res.json()["runId"]
        _wait(lambda: len(RUNS) >= 1, 20, "the asset never started")

        def answers() -> list[tuple[int, str]]:
            return [answer for session in sessions for answer in session.started]

        # The queue times the first delivery out and delivers again while the asset still runs.
        _wait(lambda: len(answers()) >= 2, 30, "no redelivery reached a worker while the asset ran")
        RELEASE.set()
        accepted = [a for a in answers() if a[0] < 300]
        refused = [a for a in answers() if a[0] >= 300]
        assert len(accepted) == 1, answers()
        assert refused and all(
            status == 409 and "attempt_already_started" in text for status, text in refused
        ), answers()

        def run() -> dict[str, Any]:
            return dict(requests.get(f"{api}/v1/workspaces/default/runs/{run_id}", timeout=10).json())

        _wait(lambda: run()["state"] == "SUCCEEDED", 30, "the run never succeeded")
        assert len(RUNS) == 1, RUNS
        assert stack.ctx is not None
        store = stack.ctx.workspace_store("default", "default")
        events = [store.get(m.name) for m in store.list("ledger/orchestration/")]
        started = [
            e.data for e in events if e is not None and json.loads(e.data)["event_type"] == "TaskStarted"
        ]
        assert len(started) == 1, started
    finally:
        RELEASE.set()
        stack.stop()
        server.shutdown()
