"""The real worker on the emulator stack: a project of ``@asset`` functions whose behaviour is set by files.

``run_emulator_stack(project_dir, ...)`` serves the project with ``servo.worker``; the assets read a
control directory beside them ("fail N times, then succeed"), so a test scripts failures without
touching the stack. Driven over the public HTTP API only.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from servo.dev.emulators import EmulatorStack, run_emulator_stack

pytestmark = pytest.mark.emulator

WS = "wkreal"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")

ASSETS = """
import pathlib

from servo import asset

CONTROL = pathlib.Path(__file__).with_name("control")


def _call_number(name):
    counter = CONTROL / f"{name}.calls"
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    return n


def _failures_wanted(name):
    path = CONTROL / f"{name}.fail"
    return int(path.read_text()) if path.exists() else 0


@asset(namespace="wk")
def a(context):
    print("asset A ran")


@asset(namespace="wk", deps=["wk.a"])
def b(context):
    n = _call_number("b")
    if n <= _failures_wanted("b"):
        raise RuntimeError(f"b scripted failure on call {n}")
    print(f"asset B succeeded on call {n}")


@asset(namespace="wk", deps=["wk.b"])
def c(context):
    print("asset C ran")


@asset(namespace="wk", max_retries=0)
def broken(context):
    raise ValueError("broken is always broken")


@asset(namespace="wk", deps=["wk.broken"])
def after_broken(context):
    print("never runs")
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "control").mkdir()
    (root / "wk_assets.py").write_text(textwrap.dedent(ASSETS))
    return root


@pytest.fixture(scope="module")
def stack(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorStack]:
    with run_emulator_stack(project, tmp_path_factory.mktemp("stack"), 0, sweep_interval_s=1.0) as s:
        _deploy(s)
        yield s


def _asset(key: str, *deps: str, max_retries: int = 2) -> dict[str, Any]:
    ns, name = key.split(".", 1)
    return {
        "key": {"namespace": ns, "name": name},
        "id": f"id-{key}",
        "dependencies": [{"upstreamKey": d} for d in deps],
        "execution": {"maxRetries": max_retries},
    }


def _deploy(stack: EmulatorStack) -> None:
    assets = [
        _asset("wk.a"),
        _asset("wk.b", "wk.a"),
        _asset("wk.c", "wk.b"),
        _asset("wk.broken", max_retries=0),
        _asset("wk.after_broken", "wk.broken"),
    ]
    body = {"manifestVersion": "1.0", "codeVersionId": "cv1", "assets": assets}
    res = requests.post(f"{stack.api_url}/v1/workspaces/{WS}/manifests", json=body, timeout=30)
    assert res.status_code in (200, 201), res.text


def _run_to_end(stack: EmulatorStack, selection: list[str], timeout: float = 60) -> dict[str, Any]:
    res = requests.post(f"{stack.api_url}/v1/workspaces/{WS}/runs", json={"selection": selection}, timeout=30)
    assert res.status_code in (200, 201), res.text
    run_id = res.json()["runId"]
    deadline = time.monotonic() + timeout
    run: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        got = requests.get(f"{stack.api_url}/v1/workspaces/{WS}/runs/{run_id}", timeout=30)
        if got.status_code == 200:
            run = got.json()
            if run["state"] in TERMINAL:
                return run
        time.sleep(0.25)
    raise AssertionError(f"run {run_id} did not finish in {timeout}s: {json.dumps(run)}")


def test_an_asset_failing_twice_succeeds_on_attempt_3_and_its_output_reaches_the_logs(
    stack: EmulatorStack, project: Path
) -> None:
    (project / "control" / "b.fail").write_text("2")

    run = _run_to_end(stack, ["wk.a", "wk.b", "wk.c"])

    assert run["state"] == "SUCCEEDED", run
    tasks = {t["taskKey"]: t for t in run["tasks"]}
    assert [tasks[k]["state"] for k in ("wk.a", "wk.b", "wk.c")] == ["SUCCEEDED"] * 3
    assert tasks["wk.b"]["attempt"] == 3 and (project / "control" / "b.calls").read_text() == "3"
    logs = requests.get(f"{stack.api_url}/v1/workspaces/{WS}/runs/{run['runId']}/logs", timeout=30)
    assert logs.status_code == 200 and "asset B succeeded on call 3" in logs.text, logs.text


def test_an_asset_without_retries_fails_the_run_and_skips_its_downstream(stack: EmulatorStack) -> None:
    run = _run_to_end(stack, ["wk.broken", "wk.after_broken"])

    assert run["state"] == "FAILED", run
    tasks = {t["taskKey"]: t for t in run["tasks"]}
    assert tasks["wk.broken"]["state"] == "FAILED" and tasks["wk.broken"]["attempt"] == 1
    assert "broken is always broken" in tasks["wk.broken"].get("errorMessage", "")
    assert tasks["wk.after_broken"]["state"] == "SKIPPED"
