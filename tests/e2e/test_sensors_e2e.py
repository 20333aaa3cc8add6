"""Sensors end to end (issue 19): `servo dev` on the real clock, the `servo` CLI and plain HTTP against it.

After `servo sensor enable NAME`: a poll sensor requesting one run per file in a folder starts exactly one
run per new file, and a file dropped again under the same name starts no second run; a run-status sensor
on FAILED is called once when a run fails; a Pub/Sub-shaped push envelope posted twice starts one run.
Nothing is injected: the dev sweep evaluates due sensors and the in-process worker runs them.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.test_m1_smoke import REPO, TERMINAL, Stack, _free_port, _read_ready_line, servo_dev

pytestmark = pytest.mark.e2e

SENSORS = '''
from pathlib import Path

from servo import RunRequest, SkipReason, asset, run_status_sensor, sensor

DROP = Path(r"{drop}")
CALLS = Path(r"{calls}")


@asset(namespace="demo", max_retries=0)
def broken(ctx):
    raise RuntimeError("broken on purpose")


@sensor(target=["demo.a"], minimum_interval_seconds=10)
def new_files(ctx):
    """One run per file in the folder: the file name is the run key, so a file seen again runs never."""
    names = sorted(p.name for p in DROP.iterdir() if p.is_file())
    ctx.update_cursor(str(len(names)))
    return [RunRequest(run_key=f"file:{{n}}") for n in names] or SkipReason("the folder is empty")


@run_status_sensor(run_status=["FAILED"])
def on_failure(ctx):
    with CALLS.open("a") as out:
        out.write(ctx.run.run_id + "\\n")


@sensor(target=["demo.a"], push=True, minimum_interval_seconds=10)
def inbox(ctx):
    return RunRequest(labels={{"message": ctx.message.data.decode()}})
'''
DEADLINE_S = 60.0


@contextmanager
def _dev_stack(root: Path, mode: str, *extra: str) -> Iterator[Stack]:
    """`servo dev` (embedded or through the emulators) of the quickstart with SENSORS, deployed."""
    project = root / "project"
    shutil.copytree(REPO / "examples" / "quickstart", project, ignore=shutil.ignore_patterns(".servo*"))
    (root / "drop").mkdir()
    source = SENSORS.format(drop=root / "drop", calls=root / "calls.txt")
    (project / "assets" / "sensors.py").write_text(source, encoding="utf-8")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
    env.update(SERVO_API_URL=f"http://127.0.0.1:{port}", PYTHONUNBUFFERED="1")
    options = (["--emulators"] if mode == "emulators" else []) + list(extra)
    with servo_dev(root, project, port, env, *options) as proc:
        storage: list[str] = []
        ready = _read_ready_line(proc, 60, storage)
        stack = Stack(ready, root / "data", project, env, mode, storage=storage)
        assert stack.json("deploy")["assetCount"] == 4
        yield stack


@pytest.fixture(scope="module", params=["embedded", "emulators"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with _dev_stack(tmp_path_factory.mktemp("sensors"), request.param) as stack:
        yield stack


@pytest.fixture(params=["embedded", "emulators"])
def unswept(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Stack, float]]:
    """A stack whose first sweep comes a minute after it started (its epoch time, returned)."""
    started = time.time()
    with _dev_stack(tmp_path, request.param, "--sweep-interval", "60") as stack:
        yield stack, started


def _sensor_runs(stack: Stack, sensor_id: str) -> dict[str, str]:
    """run key -> run id of the runs a sensor started, read from the ledger itself."""
    return {
        e["data"]["run_key"]: e["data"]["run_id"]
        for e in stack.ledger()
        if e["event_type"] == "RunTriggered"
        and e["data"]["trigger"]["type"] == "sensor"
        and e["data"]["trigger"]["sensor_id"] == sensor_id
    }


def _settled(stack: Stack, sensor_id: str) -> bool:
    shown = stack.json("sensor", "show", sensor_id)
    return shown["pendingItems"] == 0 and "inFlightEvaluationId" not in shown


def _wait_until(predicate: Any, what: str, timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} not within {timeout:.0f} s"
        time.sleep(0.5)
    return value


def test_a_poll_sensor_starts_one_run_per_new_file_and_none_for_a_name_seen_before(stack: Stack) -> None:
    drop = stack.data_dir.parent / "drop"
    (drop / "a.csv").write_text("1")
    assert stack.json("sensor", "enable", "new_files")["enabled"] is True
    runs = _wait_until(lambda: _sensor_runs(stack, "new_files"), "the first file's run")
    assert list(runs) == ["sensor:new_files:file:a.csv"]
    (drop / "b.csv").write_text("2")
    runs = _wait_until(
        lambda: len(_sensor_runs(stack, "new_files")) == 2 and _sensor_runs(stack, "new_files"), "b"
    )
    assert sorted(runs) == ["sensor:new_files:file:a.csv", "sensor:new_files:file:b.csv"]
    # The same name dropped again: the next evaluations request it again, and its run key makes no run.
    (drop / "a.csv").unlink()
    (drop / "a.csv").write_text("again")
    evaluated = len(stack.json("sensor", "evaluations", "new_files", "-n", "200")["evaluations"])
    _wait_until(
        lambda: (
            len(stack.json("sensor", "evaluations", "new_files", "-n", "200")["evaluations"]) >= evaluated + 2
        ),
        "two more evaluations",
    )
    assert sorted(_sensor_runs(stack, "new_files")) == sorted(runs)
    for run_id in runs.values():
        assert stack.wait(run_id, lambda r: r["state"] in TERMINAL)["state"] == "SUCCEEDED"
    shown = stack.json("sensor", "show", "new_files")
    assert shown["cursor"] == "2" and shown["status"] == "ACTIVE" and shown["stateVersion"] >= 3


def test_a_run_status_sensor_on_failed_is_called_once_when_a_run_fails(stack: Stack) -> None:
    calls = stack.data_dir.parent / "calls.txt"
    stack.json("sensor", "enable", "on_failure")
    run_id = stack.json("run", "demo.broken")["runId"]
    assert stack.wait(run_id, lambda r: r["state"] in TERMINAL)["state"] == "FAILED"
    _wait_until(lambda: calls.exists() and calls.read_text().strip(), "the run-status call")
    # Later sweeps see the same failed run: it stays one item, called once.
    _wait_until(
        lambda: any(
            e["status"] == "SKIPPED" for e in stack.json("sensor", "evaluations", "on_failure")["evaluations"]
        ),
        "the evaluation's result",
    )
    # Its item is DONE and nothing is in flight: no later sweep calls the sensor for this run again.
    _wait_until(lambda: _settled(stack, "on_failure"), "on_failure settled")
    assert calls.read_text().splitlines() == [run_id]


def test_a_pubsub_push_envelope_posted_twice_starts_one_run(stack: Stack) -> None:
    stack.json("sensor", "enable", "inbox")
    envelope = {
        "message": {
            "messageId": "pubsub-1",
            "data": base64.b64encode(b"hello").decode(),
            "attributes": {"source": "e2e"},
            "publishTime": "2026-01-01T00:00:00Z",
        },
        "subscription": "projects/p/subscriptions/servo-inbox",
    }
    url = f"{stack.api_url}/v1/workspaces/default/sensors/inbox/push?tenant=default"
    first = requests.post(url, json=envelope, timeout=10)
    second = requests.post(url, json=envelope, timeout=10)
    assert (first.status_code, first.json()["status"]) == (200, "RECORDED")
    assert (second.status_code, second.json()["status"]) == (200, "DUPLICATE")
    runs = _wait_until(lambda: _sensor_runs(stack, "inbox"), "the message's run")
    assert list(runs) == ["sensor:inbox:msg:pubsub-1:0"]
    run = stack.wait(runs["sensor:inbox:msg:pubsub-1:0"], lambda r: r["state"] in TERMINAL)
    assert run["state"] == "SUCCEEDED"
    assert requests.post(url, json=envelope, timeout=10).json()["status"] == "DUPLICATE"
    _wait_until(lambda: _settled(stack, "inbox"), "inbox settled")
    assert len(_sensor_runs(stack, "inbox")) == 1
    bad = requests.post(url, json={"message": {"data": "!!"}}, timeout=10)
    assert bad.status_code == 400 and "messageId" in bad.json()["message"]
    assert requests.post(url.replace("inbox", "nope"), json=envelope, timeout=10).status_code == 404


def test_a_poll_sensor_is_evaluated_every_interval_before_any_sweep(unswept: tuple[Stack, float]) -> None:
    # automation §6.2: after each result is committed, the compactor requests the next poll and its task
    # waits in the queue (the embedded dispatcher, the Cloud Tasks emulator) for one interval (10 s).
    stack, started = unswept
    stack.json("sensor", "enable", "new_files")

    def reported() -> list[float]:
        listed = stack.json("sensor", "evaluations", "new_files")["evaluations"]
        return sorted(
            datetime.fromisoformat(e["reportedAt"]).timestamp() for e in listed if e.get("reportedAt")
        )

    times = _wait_until(lambda: len(reported()) >= 3 and reported(), "three polls", timeout=55)
    assert times[2] < started + 60, "the third poll came after the first sweep"
    assert all(later - earlier >= 10 for earlier, later in itertools.pairwise(times)), times
