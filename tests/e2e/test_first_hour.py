"""What a new user hits in the first hour (issue 17), checked against `servo dev` as a real process.

One embedded stack serves every check, with the dev defaults (no tuned heartbeat interval): tracebacks
in `servo logs` and `servo status`, the dev worker reloading deployed code, upstream outputs from an
earlier run, logs kept when an attempt times out or ignores a cancel, `logs --follow` during a run,
progress in `status`, a cancel reaching the asset quickly, and partition keys in the user's spelling.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_m1_smoke import SERVO, TERMINAL, Stack, _free_port, _read_ready_line

pytestmark = pytest.mark.e2e

CANCEL_GRACE_SEC = 4

ASSETS = """
import time

from servo import DailyPartitions, asset


def load_config(ctx):
    settings = {}
    return settings["missing-key"]


@asset(namespace="hour", max_retries=0)
def broken(ctx):
    print("broken is starting")
    return load_config(ctx)


@asset(namespace="hour", max_retries=0, timeout_seconds=2)
def sleepy(ctx):
    print("sleepy got going", flush=True)
    time.sleep(60)


@asset(namespace="hour", max_retries=0)
def stubborn(ctx):
    print("stubborn ignores cancels", flush=True)
    time.sleep(60)


@asset(namespace="hour")
def chatty(ctx):
    for i in range(200):
        print(f"chatty line {i}", flush=True)
        ctx.report_progress(f"step {i} of 200", i // 2)
        if ctx.is_cancelled():
            print("chatty saw the cancel", flush=True)
            return None
        time.sleep(0.1)


@asset(namespace="hour")
def source(ctx):
    return {"rows": 3}


@asset(namespace="hour", deps=[source])
def reader(ctx, source):
    print("reader read", source["metadata"]["rows"], "rows upstream")


@asset(namespace="hour", partitions=DailyPartitions(start="2025-01-01"))
def daily(ctx):
    print("daily partition", ctx.partition_key, repr(ctx.partition_key["date"]))
"""

VERSIONED = """
from servo import asset


@asset(namespace="hour")
def versioned(ctx):
    print("versioned says {word}")
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("first-hour")
    project = root / "project"
    (project / "assets").mkdir(parents=True)
    (project / "servo.toml").write_text('[project]\nname = "hour"\n', encoding="utf-8")
    (project / "assets" / "hour.py").write_text(ASSETS, encoding="utf-8")
    (project / "assets" / "versioned.py").write_text(VERSIONED.format(word="one"), encoding="utf-8")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
    env.update(
        SERVO_CANCEL_GRACE_SEC=str(CANCEL_GRACE_SEC),
        SERVO_API_URL=f"http://127.0.0.1:{port}",
        PYTHONUNBUFFERED="1",
    )
    log = (root / "dev.err").open("w")
    proc = subprocess.Popen(
        [SERVO, "dev", "--port", str(port), "--data", str(root / "data"), "--project", str(project),
         "--sweep-interval", "0.5"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    try:
        api_url = _read_ready_line(proc, 60)
        running = Stack(api_url, root / "data", project, env, "embedded")
        running.servo("deploy")
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()


def _finished(stack: Stack, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
    return stack.wait(run_id, lambda r: r["state"] in TERMINAL, timeout=timeout)


def _run(stack: Stack, *args: str) -> str:
    return str(stack.json("run", *args)["runId"])


def _until(stack: Stack, run_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> None:
    stack.wait(run_id, predicate, timeout=timeout)


def _logs_with(stack: Stack, run_id: str, text: str, timeout: float = 10.0) -> str:
    """`servo logs RUN` once it shows ``text`` (a running attempt's output arrives every second)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = stack.servo("logs", run_id, check=False).stdout
        if text in shown:
            return shown
        assert time.monotonic() < deadline, f"{text!r} not in the logs of {run_id}: {shown}"
        time.sleep(0.3)


def test_a_failed_assets_traceback_is_in_logs_and_status(stack: Stack) -> None:
    run_id = _run(stack, "hour.broken")
    run = _finished(stack, run_id)
    assert run["state"] == "FAILED"
    logs = stack.servo("logs", run_id).stdout
    assert "broken is starting" in logs
    assert "Traceback (most recent call last)" in logs
    assert 'settings["missing-key"]' in logs and "in load_config" in logs
    # User frames first: the first frame shown is the asset, not the worker's machinery.
    first_frame = logs.split("Traceback (most recent call last):", 1)[1].strip().splitlines()[0]
    assert "hour.py" in first_frame and "in broken" in first_frame
    assert "servo/worker" not in logs
    status = stack.servo("status", run_id).stdout
    assert "Traceback (most recent call last)" in status and "in load_config" in status
    task = run["tasks"][0]
    assert "in load_config" in task["stackTrace"]


def test_an_edited_asset_runs_its_new_code_after_deploy(stack: Stack) -> None:
    first = _run(stack, "hour.versioned")
    assert _finished(stack, first)["state"] == "SUCCEEDED"
    assert "versioned says one" in stack.servo("logs", first).stdout
    assets = stack.project / "assets"
    (assets / "versioned.py").write_text(VERSIONED.format(word="two"), encoding="utf-8")
    (assets / "added.py").write_text(
        'from servo import asset\n\n\n@asset(namespace="hour")\ndef added(ctx):\n    print("added runs")\n',
        encoding="utf-8",
    )
    stack.servo("deploy")
    second = _run(stack, "hour.versioned")
    assert _finished(stack, second)["state"] == "SUCCEEDED"
    assert "versioned says two" in stack.servo("logs", second).stdout
    third = _run(stack, "hour.added")
    assert _finished(stack, third)["state"] == "SUCCEEDED"
    assert "added runs" in stack.servo("logs", third).stdout


def test_an_upstream_outside_the_selection_is_its_last_materialization(stack: Stack) -> None:
    assert _finished(stack, _run(stack, "hour.source"))["state"] == "SUCCEEDED"
    run_id = _run(stack, "hour.reader")
    run = _finished(stack, run_id)
    assert run["state"] == "SUCCEEDED", run
    assert "reader read 3 rows upstream" in stack.servo("logs", run_id).stdout


def test_a_timed_out_attempts_output_is_kept(stack: Stack) -> None:
    run_id = _run(stack, "hour.sleepy")
    run = _finished(stack, run_id, timeout=40)
    assert run["tasks"][0]["errorCategory"] == "TIMEOUT"
    assert "sleepy got going" in stack.servo("logs", run_id).stdout


def test_an_attempt_that_ignores_a_cancel_keeps_its_output(stack: Stack) -> None:
    run_id = _run(stack, "hour.stubborn")
    _until(stack, run_id, lambda r: r["tasks"][0]["state"] == "RUNNING", timeout=20)
    _logs_with(stack, run_id, "stubborn ignores cancels")  # readable while it runs
    stack.servo("cancel", run_id)
    assert _finished(stack, run_id, timeout=CANCEL_GRACE_SEC + 20)["state"] == "CANCELLED"
    assert "stubborn ignores cancels" in stack.servo("logs", run_id).stdout


def test_logs_follow_streams_a_running_attempt(stack: Stack) -> None:
    run_id = _run(stack, "hour.chatty")
    _until(stack, run_id, lambda r: r["tasks"][0]["state"] == "RUNNING", timeout=20)
    follow = subprocess.Popen(
        [SERVO, "logs", run_id, "--follow"], cwd=stack.project, env=stack.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert follow.stdout is not None
        seen = ""
        for line in follow.stdout:
            seen += line
            if "chatty line" in line:
                break
        assert "chatty line" in seen
        # Progress is shown while the task runs.
        _until(stack, run_id, lambda r: "step" in str(r["tasks"][0].get("progressMessage")), timeout=10)
        status = stack.servo("status", run_id).stdout
        assert "step" in status and "%" in status
        stack.servo("cancel", run_id)
        # The cancel reaches the asset long before the grace period would force the attempt.
        run = _finished(stack, run_id, timeout=CANCEL_GRACE_SEC - 1)
        assert run["state"] == "CANCELLED"
        rest, err = follow.communicate(timeout=20)
        assert follow.returncode == 0, err
        assert "chatty saw the cancel" in seen + rest
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()


def test_a_partition_key_reaches_the_user_in_their_spelling(stack: Stack) -> None:
    run_id = _run(stack, "hour.daily", "--partition", "date=2025-03-01")
    run = _finished(stack, run_id)
    assert run["state"] == "SUCCEEDED"
    logs = stack.servo("logs", run_id).stdout
    assert "daily partition 2025-03-01 datetime.date(2025, 3, 1)" in logs
    status = stack.servo("status", run_id).stdout
    assert "d:2025" not in status and "d:2025" not in logs


def test_validate_refuses_a_daily_asset_feeding_a_static_one(tmp_path: Path) -> None:
    project = tmp_path / "bad"
    (project / "assets").mkdir(parents=True)
    (project / "servo.toml").write_text('[project]\nname = "bad"\n', encoding="utf-8")
    (project / "assets" / "bad.py").write_text(
        "from servo import DailyPartitions, StaticPartitions, asset\n\n\n"
        '@asset(namespace="bad", partitions=DailyPartitions(start="2025-01-01"))\n'
        "def day(ctx):\n    return None\n\n\n"
        '@asset(namespace="bad", deps=[day], partitions=StaticPartitions("region", ["eu", "us"]))\n'
        "def region(ctx, day):\n    return None\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
    done = subprocess.run(
        [SERVO, "validate"], cwd=project, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    message = done.stderr + done.stdout
    assert "bad.region" in message and "bad.day" in message and "date" in message and "region" in message
    assert "d:" not in message
