"""`servo dev` killed with SIGKILL while it runs and queues tasks, then started again on its data
(issue 15 item 22, issue 17 item 6): real processes, the `servo` CLI against them.

Ten runs of an asset that holds while a marker file exists: the worker runs eight at once and the
queue keeps the other two backing off, in memory. After `kill -9` and a restart the eight attempts the
dead worker ran are reported lost at once (WORKER_LOST, shown by `servo status`) and retried, and the
two queued dispatches are delivered at once: every run ends well inside the heartbeat limit (90 s)
and the sweep's 10-minute repair threshold.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from servo.store import LocalFileStore

from tests.e2e.test_m1_smoke import REPO, SERVO, _free_port, _read_ready_line

pytestmark = pytest.mark.e2e
RUNS = 10

HOLD_ASSET = """
import time
from pathlib import Path

from servo import asset

HOLD = Path(__file__).resolve().parents[1] / "hold"


@asset(namespace="demo", max_retries=2)
def hold(ctx):
    deadline = time.monotonic() + 120
    while HOLD.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return {"row_count": 1}
"""


class Dev:
    def __init__(self, root: Path) -> None:
        self.project = root / "project"
        shutil.copytree(
            REPO / "examples" / "quickstart", self.project, ignore=shutil.ignore_patterns(".servo*")
        )
        (self.project / "assets" / "hold.py").write_text(HOLD_ASSET, encoding="utf-8")
        self.data = root / "data"
        self.port = _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
        self.env.update(SERVO_API_URL=f"http://127.0.0.1:{self.port}", PYTHONUNBUFFERED="1")
        self.log = (root / "dev.err").open("a")
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SERVO, "dev", "--port", str(self.port), "--data", str(self.data), "--project", str(self.project),
             "--sweep-interval", "0.5"],
            cwd=self.project.parent, env=self.env, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )  # fmt: skip
        _read_ready_line(self.proc, 60)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def servo(self, *args: str) -> Any:
        done = subprocess.run(
            [SERVO, *args, "--json"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, f"servo {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout)

    def wait(self, what: str, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, what
            time.sleep(0.3)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    stack = Dev(tmp_path)
    try:
        yield stack
    finally:
        stack.stop()


def test_a_killed_servo_dev_recovers_its_queue_and_its_workers_attempts_at_start(dev: Dev) -> None:
    hold = dev.project / "hold"
    hold.write_text("", encoding="utf-8")
    dev.start()
    dev.servo("deploy")
    run_ids = [dev.servo("run", "demo.hold")["runId"] for _ in range(RUNS)]

    def tasks() -> list[dict[str, Any]]:
        # Polled over HTTP: ten CLI processes per poll would cost more than the recovery under test.
        url = f"http://127.0.0.1:{dev.port}/v1/workspaces/default/runs"
        return [requests.get(f"{url}/{r}", timeout=10).json()["tasks"][0] for r in run_ids]

    dev.wait("eight attempts running", lambda: sum(t["state"] == "RUNNING" for t in tasks()) == 8, 60)
    dev.kill()
    hold.unlink()
    restarted = time.monotonic()
    dev.start()
    dev.wait("every run finished", lambda: all(t["state"] == "SUCCEEDED" for t in tasks()), 60)
    assert time.monotonic() - restarted < 60  # not the 90-s heartbeat limit, nor the 10-minute repair
    final = tasks()
    assert sorted(t["attempt"] for t in final) == [1, 1] + [2] * 8, final
    # The eight first attempts ended as lost with their worker, not as a silent heartbeat timeout.
    assert sorted(_lost_attempts(dev.data)) == [1] * 8


def _lost_attempts(data: Path) -> list[int]:
    store = LocalFileStore(data / "servo-local")
    found = []
    for meta in store.list("default/default/ledger/orchestration/"):
        obj = store.get(meta.name)
        assert obj is not None
        event = json.loads(obj.data)
        if event["event_type"] == "TaskFinished" and "WORKER_LOST" in str(event["data"].get("error_message")):
            found.append(int(event["data"]["attempt"]))
    return found
