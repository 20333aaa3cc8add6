"""Schedules end to end (issue 18): `servo dev` on the real clock, the `servo` CLI against it.

A `* * * * *` schedule, deployed and enabled, starts a run within 90 s that `servo schedule ticks` names;
after `servo schedule disable` its ticks are SKIPPED and no further run starts. Nothing is injected: the
dev sweep runs every second, so a minute boundary is all the test waits for.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_m1_smoke import REPO, TERMINAL, Stack, _free_port, _read_ready_line, servo_dev

pytestmark = pytest.mark.e2e

SCHEDULES = """
from servo import schedule


@schedule(cron="* * * * *", target=["demo.a", "demo.b"])
def every_minute():
    pass
"""
FIRE_DEADLINE_S = 90.0


@pytest.fixture(scope="module", params=["embedded", "emulators"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("schedules")
    project = root / "project"
    shutil.copytree(REPO / "examples" / "quickstart", project, ignore=shutil.ignore_patterns(".servo*"))
    (project / "assets" / "schedules.py").write_text(SCHEDULES, encoding="utf-8")
    data_dir = root / "data"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
    env.update(SERVO_API_URL=f"http://127.0.0.1:{port}", PYTHONUNBUFFERED="1")
    mode = ["--emulators"] if request.param == "emulators" else []
    # The schedule's sweep runs every second (servo_dev's default interval is shorter still).
    with servo_dev(root, project, port, env, *mode) as proc:
        storage: list[str] = []
        yield Stack(
            _read_ready_line(proc, 60, storage), data_dir, project, env, request.param, storage=storage
        )


def _ticks(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.json("schedule", "ticks", "every_minute", "-n", "200")["ticks"])


def _wait_for(stack: Stack, predicate: Any, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        ticks = _ticks(stack)
        if predicate(ticks):
            return ticks
        assert time.monotonic() < deadline, f"no such tick within {timeout:.0f} s: {ticks}"
        time.sleep(1.0)


def _cron_runs(stack: Stack) -> set[str]:
    return {
        e["data"]["run_id"]
        for e in stack.ledger()
        if e["event_type"] == "RunTriggered" and e["data"]["trigger"]["type"] == "cron"
    }


def test_an_enabled_minutely_schedule_runs_and_stops_when_disabled(stack: Stack) -> None:
    assert stack.json("deploy")["assetCount"] == 3
    assert stack.json("schedule", "show", "every_minute")["status"] == "PAUSED"
    assert stack.json("schedule", "enable", "every_minute")["enabled"] is True

    ticks = _wait_for(stack, lambda ts: any(t.get("runId") for t in ts), FIRE_DEADLINE_S)
    fired = next(t for t in ticks if t.get("runId"))
    assert fired["status"] == "TRIGGERED" and fired["runKey"] == f"sched:{fired['tickId']}"
    run = stack.wait(fired["runId"], lambda r: r["state"] in TERMINAL, timeout=60)
    assert run["state"] == "SUCCEEDED"
    assert sorted(t["taskKey"] for t in run["tasks"]) == ["demo.a", "demo.b"]

    off = stack.json("schedule", "disable", "every_minute")
    assert off["enabled"] is False and off["changed"] is True
    disabled_at = time.time()
    # The next minute boundary after the disable is recorded SKIPPED ("paused"), with no run.
    ticks = _wait_for(stack, lambda ts: any(t["status"] == "SKIPPED" for t in ts), FIRE_DEADLINE_S)
    later = [t for t in ticks if _epoch(t["tickId"]) > disabled_at]
    assert later and all(t["status"] == "SKIPPED" and "runId" not in t for t in later)
    triggered = {t["runId"] for t in ticks if t["status"] == "TRIGGERED"}
    assert _cron_runs(stack) == triggered  # every cron run is a TRIGGERED tick's, none after the disable


def _epoch(tick_id: str) -> int:
    return int(tick_id.rsplit(":", 1)[1])
