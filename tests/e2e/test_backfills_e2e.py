"""Backfills end to end (issue 20): `servo dev` (embedded, and `--emulators`) on the real clock, the `servo`
CLI against it.

`servo backfill create daily.asset --from 2025-01-01 --to 2025-01-10 --wait` materializes exactly those
ten partitions; a backfill where one partition fails ends FAILED and `retry-failed` reruns that partition
alone; pause stops new chunks and resume continues. Nothing is injected: the worker runs the project's code.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_m1_smoke import Stack, _free_port, _read_ready_line, servo_dev

pytestmark = pytest.mark.e2e

ASSETS = """
import time
from pathlib import Path

from servo import DailyPartitions
from servo import asset as servo_asset

FAIL = Path(__file__).resolve().parent.parent / "fail.txt"
DAILY = DailyPartitions(start="2025-01-01")


@servo_asset(namespace="daily", partitions=DAILY)
def asset(ctx):
    day = str(ctx.partition_key["date"])
    if FAIL.exists() and day in FAIL.read_text().split():
        raise RuntimeError(f"partition {day} is broken")
    print("materialized", day)
    return {"row_count": 1}


@servo_asset(namespace="daily", partitions=DAILY)
def slow(ctx):
    time.sleep(1.5)
    return {"row_count": 1}
"""


# The emulators run the deployed code path: each function its own process, the planner's passes (create,
# after commit in the compactor, the timers sweep) truly concurrent over fake-gcs-server.
@pytest.fixture(scope="module", params=["embedded", pytest.param("emulators", marks=pytest.mark.emulator)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("backfills")
    project = root / "project"
    (project / "assets").mkdir(parents=True)
    (project / "servo.toml").write_text('[project]\nname = "daily"\n', encoding="utf-8")
    (project / "assets" / "daily.py").write_text(ASSETS, encoding="utf-8")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
    env.update(SERVO_API_URL=f"http://127.0.0.1:{port}", PYTHONUNBUFFERED="1")
    mode = ["--emulators"] if request.param == "emulators" else []
    with servo_dev(root, project, port, env, *mode) as proc:
        storage: list[str] = []
        running = Stack(
            _read_ready_line(proc, 60, storage), root / "data", project, env, request.param, storage
        )
        assert running.json("deploy")["assetCount"] == 2
        yield running


def _runs_of(stack: Stack, backfill_id: str) -> list[dict[str, Any]]:
    """Every run the backfill started, each with the partition its task materialized (`servo status`)."""
    listed = stack.json("status", "-n", "200")["runs"]
    runs = [r for r in listed if (r.get("trigger") or {}).get("backfillId") == backfill_id]
    return [{**r, "partition": stack.run(r["runId"])["tasks"][0].get("partitionKey")} for r in runs]


def _create(stack: Stack, *args: str, check: bool = True) -> Any:
    return stack.servo("backfill", "create", *args, check=check)


def test_a_ten_day_backfill_materializes_exactly_those_ten_partitions(stack: Stack) -> None:
    done = _create(stack, "daily.asset", "--from", "2025-01-01", "--to", "2025-01-10", "--wait", "--json")
    backfill = json.loads(done.stdout)
    assert backfill["state"] == "SUCCEEDED", backfill
    assert backfill["partitionCounts"]["succeeded"] == 10
    runs = _runs_of(stack, backfill["backfillId"])
    assert all(r["state"] == "SUCCEEDED" for r in runs)
    days = sorted(str(r["partition"]) for r in runs)
    assert len(days) == 10 and days == sorted(set(days))
    assert all("2025-01-" in d for d in days) and "2025-01-01" in days[0] and "2025-01-10" in days[-1]
    # The asset catalog agrees: exactly those ten partitions of the asset are materialized, none failed.
    catalog = stack.json("asset", "show", "daily.asset")
    assert catalog["partitions"]["materialized"] == 10 and catalog["partitions"]["failed"] == 0
    shown = sorted(p["partitionKey"] for p in catalog["partitionStatus"] if p.get("lastMaterialization"))
    assert shown == days


def test_a_failed_partition_fails_the_backfill_and_retry_failed_reruns_only_it(stack: Stack) -> None:
    (stack.project / "fail.txt").write_text("2025-02-02\n", encoding="utf-8")
    failed = _create(
        stack, "daily.asset", "--from", "2025-02-01", "--to", "2025-02-03", "--wait", check=False
    )
    assert failed.returncode == 1 and "ended FAILED" in failed.stderr
    parent = stack.json("backfill", "list", "--state", "FAILED")["backfills"][0]
    assert parent["partitionCounts"]["failed"] == 1 and parent["partitionCounts"]["succeeded"] == 2
    (stack.project / "fail.txt").unlink()
    retried = stack.servo("backfill", "retry-failed", parent["backfillId"], "--wait")
    assert "SUCCEEDED" in retried.stdout
    child = next(
        b
        for b in stack.json("backfill", "list")["backfills"]
        if b.get("parentBackfillId") == parent["backfillId"]
    )
    assert child["state"] == "SUCCEEDED" and child["totalPartitions"] == 1
    assert [str(r["partition"]) for r in _runs_of(stack, child["backfillId"])] == ["date=d:2025-02-02"]


def test_pause_stops_new_chunks_and_resume_continues(stack: Stack) -> None:
    made = stack.json(
        "backfill", "create", "daily.slow", "--from", "2025-03-01", "--to", "2025-03-06",
        "--chunk-size", "1", "--max-concurrent", "1",
    )  # fmt: skip
    bf = made["backfillId"]
    stack.servo("backfill", "pause", bf)
    started = len(_runs_of(stack, bf))
    deadline = time.monotonic() + 30
    while stack.json("backfill", "show", bf)["activeRuns"]:  # the planned chunk finishes
        assert time.monotonic() < deadline
        time.sleep(0.5)
    time.sleep(3)  # several sweeps (every 0.5 s) pass while paused
    paused = stack.json("backfill", "show", bf)
    assert paused["state"] == "PAUSED" and len(_runs_of(stack, bf)) == started <= 2
    stack.servo("backfill", "resume", bf)
    deadline = time.monotonic() + 60
    while (shown := stack.json("backfill", "show", bf))["state"] != "SUCCEEDED":
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)
    assert len(_runs_of(stack, bf)) == 6
    assert [t["to"] for t in shown["transitions"]] == ["RUNNING", "PAUSED", "RUNNING", "SUCCEEDED"]
