"""Issue 18's black-box rerun check: `servo rerun RUN --from-failure --wait` through `servo dev` finishes a
failed run's remaining tasks, and only those."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_m1_smoke import TERMINAL, Stack, _free_port, _read_ready_line, servo_dev

pytestmark = pytest.mark.e2e

# first -> second -> third; second fails until the marker file exists (the "fix" between the runs).
ASSETS = """
from pathlib import Path

from servo import asset

MARKER = Path({marker!r})


@asset(namespace="re")
def first(ctx):
    print("first ran")


@asset(namespace="re", deps=[first], max_retries=0)
def second(ctx):
    if not MARKER.exists():
        raise RuntimeError("second is not fixed yet")
    print("second is fixed")


@asset(namespace="re", deps=[second])
def third(ctx):
    print("third ran")
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("rerun")
    project = root / "project"
    (project / "assets").mkdir(parents=True)
    (project / "servo.toml").write_text('[project]\nname = "re"\n', encoding="utf-8")
    marker = root / "fixed"
    (project / "assets" / "re.py").write_text(ASSETS.format(marker=str(marker)), encoding="utf-8")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
    env.update(SERVO_API_URL=f"http://127.0.0.1:{port}", PYTHONUNBUFFERED="1")
    with servo_dev(root, project, port, env) as proc:
        running = Stack(_read_ready_line(proc, 60), root / "data", project, env, "embedded")
        running.servo("deploy")
        yield running


def test_rerun_from_failure_waits_for_the_remaining_tasks_to_succeed(stack: Stack) -> None:
    parent = str(stack.json("run", "re.first", "--include-downstream")["runId"])
    failed = stack.wait(parent, lambda r: r["state"] in TERMINAL, timeout=60)
    assert failed["state"] == "FAILED"
    assert {t["taskKey"]: t["state"] for t in failed["tasks"]} == {
        "re.first": "SUCCEEDED",
        "re.second": "FAILED",
        "re.third": "SKIPPED",
    }
    # Not fixed yet: the rerun fails again, and --wait says so with exit 1.
    early = stack.servo("rerun", parent, "--from-failure", "--run-key", "too-early", "--wait", check=False)
    assert early.returncode == 1 and "ended FAILED" in early.stderr
    Path(stack.data_dir.parent / "fixed").write_text("", encoding="utf-8")

    done = stack.servo("rerun", parent, "--from-failure", "--wait")
    assert f"Rerun (from failure) of {parent}" in done.stdout
    child = stack.json("rerun", parent, "--from-failure")["runId"]
    assert child in done.stdout
    rerun = stack.run(child)
    assert rerun["state"] == "SUCCEEDED" and rerun["parentRunId"] == parent
    assert rerun["rerunKind"] == "FROM_FAILURE"
    assert {t["taskKey"]: t["state"] for t in rerun["tasks"]} == {
        "re.second": "SUCCEEDED",
        "re.third": "SUCCEEDED",
    }
    assert f"Rerun (from failure) of {parent}" in stack.servo("status", child).stdout
    # The repeat is the same run, and --wait of a succeeded rerun exits 0 at once.
    again = stack.json("rerun", parent, "--from-failure")
    assert again["runId"] == child and again["created"] is False
