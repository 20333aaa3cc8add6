"""Issue 4's integration test: runs execute end to end on the emulator stack.

fake-gcs-server + the Eventarc stand-in + the fixed Cloud Tasks emulator + every function under
functions-framework, driven over the public HTTP API; the worker is a scripted protocol client whose
behaviour per asset is set by files in a temp dir. The stack starts once for the module.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[attr-defined]
from servo.dev.emulators import EmulatorStack, run_emulator_stack

from tests.integration.protocol_worker import ProtocolWorker

pytestmark = pytest.mark.emulator

TENANT = "default"
HEARTBEAT_TIMEOUT_S = 3
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")


@pytest.fixture(scope="module")
def behaviours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("behaviours")


@pytest.fixture(scope="module")
def worker(behaviours: Path) -> Iterator[ProtocolWorker]:
    w = ProtocolWorker(behaviours, dispatch_secret=secrets.token_urlsafe(16)).start()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def stack(worker: ProtocolWorker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorStack]:
    overrides = {
        "SERVO_WORKER_URL": f"{worker.url}/dispatch",
        "SERVO_DISPATCH_SECRET": worker.dispatch_secret,
        "SERVO_HEARTBEAT_TIMEOUT_SEC": str(HEARTBEAT_TIMEOUT_S),
        "SERVO_CANCEL_GRACE_SEC": "5",
    }
    data_dir = tmp_path_factory.mktemp("stack")
    with run_emulator_stack(None, data_dir, 0, env_overrides=overrides, sweep_interval_s=1.0) as s:
        yield s


def _asset(key: str, *deps: str, max_retries: int = 2) -> dict[str, Any]:
    ns, name = key.split(".", 1)
    return {
        "key": {"namespace": ns, "name": name},
        "id": f"id-{key}",
        "dependencies": [{"upstreamKey": d} for d in deps],
        "execution": {"maxRetries": max_retries},
    }


def _deploy(stack: EmulatorStack, ws: str, *assets: dict[str, Any]) -> None:
    body = {"manifestVersion": "1.0", "codeVersionId": "cv1", "assets": list(assets)}
    res = requests.post(f"{stack.api_url}/v1/workspaces/{ws}/manifests", json=body, timeout=30)
    assert res.status_code in (200, 201), res.text


def _trigger(stack: EmulatorStack, ws: str, selection: list[str]) -> str:
    res = requests.post(f"{stack.api_url}/v1/workspaces/{ws}/runs", json={"selection": selection}, timeout=30)
    assert res.status_code in (200, 201), res.text
    run_id: str = res.json()["runId"]
    return run_id


def _get_run(stack: EmulatorStack, ws: str, run_id: str) -> dict[str, Any] | None:
    res = requests.get(f"{stack.api_url}/v1/workspaces/{ws}/runs/{run_id}", timeout=30)
    if res.status_code == 404:
        return None  # not compacted yet
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


def _wait_run(
    stack: EmulatorStack, ws: str, run_id: str, states: tuple[str, ...] = TERMINAL, timeout: float = 45
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    run = None
    while time.monotonic() < deadline:
        run = _get_run(stack, ws, run_id)
        if run is not None and run["state"] in states:
            return run
        time.sleep(0.25)
    raise AssertionError(f"run {run_id} not in {states} after {timeout}s: {json.dumps(run)}")


def _tasks(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["taskKey"]: t for t in run["tasks"]}


def _ledger(stack: EmulatorStack, ws: str) -> list[dict[str, Any]]:
    """Every ledger event of a workspace, read straight from fake-gcs-server, in ULID order."""
    options = {"api_endpoint": stack.storage_endpoint}
    client = storage.Client(project="p", credentials=AnonymousCredentials(), client_options=options)
    prefix = f"{TENANT}/{ws}/ledger/orchestration/"
    events = [json.loads(b.download_as_bytes()) for b in client.list_blobs(stack.bucket, prefix=prefix)]
    return sorted(events, key=lambda e: e["event_id"])


def _write(behaviours: Path, task_key: str, spec: dict[str, Any]) -> None:
    (behaviours / f"{task_key}.json").write_text(json.dumps(spec))


def test_a_task_failing_twice_is_retried_and_the_run_succeeds_on_attempt_3(
    stack: EmulatorStack, worker: ProtocolWorker, behaviours: Path
) -> None:
    _write(behaviours, "retry.b", {"fail_times": 2})
    _deploy(stack, "wsretry", _asset("retry.a"), _asset("retry.b", "retry.a"), _asset("retry.c", "retry.b"))
    run_id = _trigger(stack, "wsretry", ["retry.a", "retry.b", "retry.c"])

    run = _wait_run(stack, "wsretry", run_id, timeout=60)

    assert run["state"] == "SUCCEEDED", run
    tasks = _tasks(run)
    assert {k: t["state"] for k, t in tasks.items()} == dict.fromkeys(tasks, "SUCCEEDED")
    assert tasks["retry.b"]["attempt"] == 3 and tasks["retry.a"]["attempt"] == 1
    attempts = sorted((d.task_key, d.attempt) for d in worker.dispatched(run_id))
    assert attempts == [("retry.a", 1), ("retry.b", 1), ("retry.b", 2), ("retry.b", 3), ("retry.c", 1)]


def test_a_permanently_failing_task_fails_the_run_and_skips_its_downstream(
    stack: EmulatorStack, worker: ProtocolWorker, behaviours: Path
) -> None:
    _write(behaviours, "perm.x", {"always_fail": True})
    _deploy(stack, "wsfail", _asset("perm.x"), _asset("perm.y", "perm.x"))
    run_id = _trigger(stack, "wsfail", ["perm.x", "perm.y"])

    run = _wait_run(stack, "wsfail", run_id)

    assert run["state"] == "FAILED", run
    tasks = _tasks(run)
    assert tasks["perm.x"]["state"] == "FAILED" and tasks["perm.x"]["errorCategory"] == "USER_CODE"
    assert tasks["perm.y"]["state"] == "SKIPPED"
    assert [d.task_key for d in worker.dispatched(run_id)] == ["perm.x"]


def test_a_cancelled_run_ends_cancelled_and_nothing_is_dispatched_after_the_cancel(
    stack: EmulatorStack, worker: ProtocolWorker, behaviours: Path
) -> None:
    _write(behaviours, "cx.p", {"run_s": 60})
    _deploy(stack, "wscancel", _asset("cx.p"), _asset("cx.q", "cx.p"))
    run_id = _trigger(stack, "wscancel", ["cx.p", "cx.q"])
    _wait_run(stack, "wscancel", run_id, states=("RUNNING",))
    deadline = time.monotonic() + 20
    while _tasks(_wait_run(stack, "wscancel", run_id, states=("RUNNING",)))["cx.p"]["state"] != "RUNNING":
        assert time.monotonic() < deadline, "cx.p never started"
        time.sleep(0.2)

    res = requests.post(f"{stack.api_url}/v1/workspaces/wscancel/runs/{run_id}/cancel", json={}, timeout=30)
    assert res.status_code in (200, 202), res.text
    run = _wait_run(stack, "wscancel", run_id, timeout=30)

    assert run["state"] == "CANCELLED", run
    tasks = _tasks(run)
    assert tasks["cx.p"]["state"] == "CANCELLED" and tasks["cx.q"]["state"] in ("CANCELLED", "SKIPPED")
    events = [e for e in _ledger(stack, "wscancel") if e["data"].get("run_id") == run_id]
    cancel_id = next(e["event_id"] for e in events if e["event_type"] == "RunCancelRequested")
    dispatches = [e for e in events if e["event_type"] in ("DispatchRequested", "DispatchEnqueued")]
    assert dispatches and all(e["event_id"] < cancel_id for e in dispatches), dispatches
    assert {e["data"]["task_key"] for e in dispatches} == {"cx.p"}
    assert [(d.task_key, d.attempt) for d in worker.dispatched(run_id)] == [("cx.p", 1)]


def test_a_worker_that_stops_heartbeating_is_failed_and_retried(
    stack: EmulatorStack, worker: ProtocolWorker, behaviours: Path
) -> None:
    _write(behaviours, "hb.z", {"silent_attempts": 1})
    _deploy(stack, "wsbeat", _asset("hb.z"))
    run_id = _trigger(stack, "wsbeat", ["hb.z"])

    run = _wait_run(stack, "wsbeat", run_id, timeout=40)

    assert run["state"] == "SUCCEEDED", run
    assert _tasks(run)["hb.z"]["attempt"] == 2
    kinds = ("TaskFinished", "TaskCompletionRecorded")
    finished = [e for e in _ledger(stack, "wsbeat") if e["event_type"] in kinds]
    first = next(e["data"] for e in finished if e["data"]["attempt"] == 1)
    assert first["outcome"] == "failed"
    assert "HEARTBEAT_TIMEOUT" in json.dumps(first), first
    assert [d.attempt for d in worker.dispatched(run_id)] == [1, 2]
