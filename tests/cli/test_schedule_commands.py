"""``servo schedule ...`` against a real embedded control plane."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import requests
from servo.dev.embedded import EmbeddedStack
from servo.services.schedule_sweep import sweep_schedules

from tests.cli.conftest import MANIFEST, invoke

EVERY = {"id": "every", "cron": "* * * * *", "target": ["demo.a", "demo.b"]}


@pytest.fixture
def scheduled(stack: EmbeddedStack) -> EmbeddedStack:
    body = {**MANIFEST, "schedules": [EVERY]}
    answer = requests.post(f"{stack.api_url}/v1/workspaces/default/manifests", json=body, timeout=10)
    assert answer.status_code == 201, answer.text
    return stack


def _env(stack: EmbeddedStack) -> dict[str, str]:
    return {"SERVO_API_URL": stack.api_url}


def test_list_and_show_print_the_schedule_and_json_is_the_apis_answer(scheduled: EmbeddedStack) -> None:
    listed = invoke("schedule", "list", env=_env(scheduled))
    assert listed.exit_code == 0 and "every" in listed.stdout and "PAUSED" in listed.stdout
    shown = json.loads(invoke("schedule", "show", "every", "--json", env=_env(scheduled)).stdout)
    assert shown["scheduleId"] == "every" and shown["definition"]["target"] == ["demo.a", "demo.b"]


def test_enable_then_disable_report_the_change_once(scheduled: EmbeddedStack) -> None:
    first = json.loads(invoke("schedule", "enable", "every", "--json", env=_env(scheduled)).stdout)
    assert first == {"scheduleId": "every", "enabled": True, "statusVersion": 1, "changed": True}
    again = invoke("schedule", "enable", "every", env=_env(scheduled))
    assert "enabled (it already was)" in again.stdout
    off = invoke("schedule", "disable", "every", env=_env(scheduled))
    assert off.exit_code == 0 and "disabled; status version 2" in off.stdout


def test_ticks_show_the_run_each_tick_started(scheduled: EmbeddedStack) -> None:
    invoke("schedule", "enable", "every", env=_env(scheduled))
    later = time.time_ns() // 1_000_000 + 120_000  # two minute boundaries later, on an injected clock
    sweep_schedules(replace(scheduled.ctx, clock_ms=lambda: later), "default", "default")
    ticks = json.loads(invoke("schedule", "ticks", "every", "--json", env=_env(scheduled)).stdout)["ticks"]
    assert len(ticks) >= 2 and all(t["status"] == "TRIGGERED" and t["runId"] for t in ticks)
    table = invoke("schedule", "ticks", "every", "-n", "1", env=_env(scheduled)).stdout
    assert ticks[0]["runId"] in table and ticks[1]["runId"] not in table


def test_an_unknown_schedule_is_one_error_line_and_exit_1(scheduled: EmbeddedStack) -> None:
    result = invoke("schedule", "show", "nope", env=_env(scheduled))
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "nope" in result.stderr


def test_status_shows_a_schedule_run_as_schedule_name_tick(scheduled: EmbeddedStack) -> None:
    invoke("schedule", "enable", "every", env=_env(scheduled))
    later = time.time_ns() // 1_000_000 + 60_000
    sweep_schedules(replace(scheduled.ctx, clock_ms=lambda: later), "default", "default")
    tick = json.loads(invoke("schedule", "ticks", "every", "-n", "1", "--json", env=_env(scheduled)).stdout)
    (newest,) = tick["ticks"]
    source = f"schedule:{newest['tickId']}"  # schedule:every:EPOCH
    detail = invoke("status", newest["runId"], env=_env(scheduled)).stdout
    assert source in detail
    assert source in invoke("status", env=_env(scheduled)).stdout
    body = json.loads(invoke("status", newest["runId"], "--json", env=_env(scheduled)).stdout)
    assert body["trigger"] == {"type": "cron", "scheduleId": "every", "tickId": newest["tickId"]}
