"""Partition status and lineage end to end (issue 20): `servo dev` and the `servo` CLI, nothing injected.

A daily-partitioned asset runs for three days; a rerun of one day fails; `servo asset show daily.asset
--json` then reports three materialized partitions, the failed attempt apart from the success it did not
erase, and a lineage ref naming the exact attempt `servo status` shows for that run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import pytest

from tests.e2e.test_m1_smoke import REPO, Stack, _free_port, _read_ready_line, servo_dev

pytestmark = pytest.mark.e2e

DAILY = """
from pathlib import Path

import servo

FAIL_FLAG = Path(__file__).resolve().parent.parent / "FAIL"


@servo.asset(namespace="daily", partitions=servo.DailyPartitions("date", start="2025-01-01"), max_retries=0)
def asset(ctx):
    if FAIL_FLAG.exists():
        raise RuntimeError("told to fail")
    return {"rows": 5, "day": str(ctx.partition_key["date"])}
"""
DAYS = ("2025-01-01", "2025-01-02", "2025-01-03")


@pytest.fixture(scope="module", params=["embedded", "emulators"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("catalog")
    project = root / "project"
    shutil.copytree(REPO / "examples" / "quickstart", project, ignore=shutil.ignore_patterns(".servo*"))
    (project / "assets" / "daily.py").write_text(DAILY, encoding="utf-8")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
    env.update(SERVO_API_URL=f"http://127.0.0.1:{port}", PYTHONUNBUFFERED="1")
    mode = ["--emulators"] if request.param == "emulators" else []
    with servo_dev(root, project, port, env, *mode) as proc:
        storage: list[str] = []
        yield Stack(_read_ready_line(proc, 60, storage), root / "data", project, env, request.param, storage)


def _run(stack: Stack, day: str) -> tuple[str, int]:
    done = stack.servo("run", "daily.asset", "-p", f"date={day}", "--wait", "-q", check=False)
    return done.stdout.strip(), done.returncode


def test_partitions_materialize_and_a_failed_retry_keeps_the_success_with_its_lineage(stack: Stack) -> None:
    stack.servo("deploy")
    runs = {}
    for day in DAYS:
        runs[day], code = _run(stack, day)
        assert code == 0, runs[day]
    (stack.project / "FAIL").write_text("", encoding="utf-8")
    failed_run, code = _run(stack, "2025-01-02")
    assert code == 1 and failed_run

    shown = stack.json("asset", "show", "daily.asset")
    assert shown["partitions"]["materialized"] == 3 and shown["partitions"]["failed"] == 1
    assert shown["lastAttempt"]["runId"] == failed_run and shown["lastAttempt"]["outcome"] == "FAILED"
    rows = {r["partition"]["date"]: r for r in shown["partitionStatus"]}
    assert sorted(rows) == list(DAYS)
    second = rows["2025-01-02"]
    assert second["status"] == "MATERIALIZED_BUT_LAST_ATTEMPT_FAILED"
    assert second["lastAttempt"]["runId"] == failed_run
    kept = second["lastMaterialization"]
    assert kept["runId"] == runs["2025-01-02"] and kept["attempt"] == 1
    [task] = stack.run(runs["2025-01-02"])["tasks"]
    assert kept["executionLineageRef"] == task["executionLineageRef"]
    ref = json.loads(kept["executionLineageRef"])
    assert ref == {
        "runId": runs["2025-01-02"],
        "taskKey": "daily.asset",
        "attempt": 1,
        "materializationId": task["materializationId"],
    }
    assert all(rows[d]["status"] == "MATERIALIZED" for d in ("2025-01-01", "2025-01-03"))

    listed = stack.json("asset", "list")["assets"]
    daily = next(a for a in listed if a["assetKey"] == "daily.asset")
    assert daily["partitions"]["materialized"] == 3
