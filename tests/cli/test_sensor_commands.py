"""``servo sensor ...`` against a real embedded control plane (automation §8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from servo.dev.embedded import EmbeddedStack

from tests.cli.conftest import MANIFEST, invoke

FILES = {"id": "files", "kind": "POLL", "target": ["demo.a"], "minimumIntervalSeconds": 30}
INBOX = {**FILES, "id": "inbox", "kind": "PUSH"}


@pytest.fixture
def sensed(stack: EmbeddedStack) -> EmbeddedStack:
    body = {**MANIFEST, "sensors": [FILES, INBOX]}
    answer = requests.post(f"{stack.api_url}/v1/workspaces/default/manifests", json=body, timeout=10)
    assert answer.status_code == 201, answer.text
    return stack


def _env(stack: EmbeddedStack) -> dict[str, str]:
    return {"SERVO_API_URL": stack.api_url}


def test_list_and_show_print_the_sensor_and_json_is_the_apis_answer(sensed: EmbeddedStack) -> None:
    listed = invoke("sensor", "list", env=_env(sensed))
    assert listed.exit_code == 0 and "files" in listed.stdout and "PAUSED" in listed.stdout
    shown = json.loads(invoke("sensor", "show", "inbox", "--json", env=_env(sensed)).stdout)
    assert (
        shown["sensorId"] == "inbox" and shown["definition"]["kind"] == "PUSH" and shown["stateVersion"] == 0
    )
    assert "state version 0" in invoke("sensor", "show", "files", env=_env(sensed)).stdout


def test_enable_then_disable_report_the_change_once(sensed: EmbeddedStack) -> None:
    first = json.loads(invoke("sensor", "enable", "files", "--json", env=_env(sensed)).stdout)
    assert first == {"sensorId": "files", "enabled": True, "stateVersion": 1, "changed": True}
    assert "enabled (it already was)" in invoke("sensor", "enable", "files", env=_env(sensed)).stdout
    off = invoke("sensor", "disable", "files", env=_env(sensed))
    assert off.exit_code == 0 and "disabled; state version 2" in off.stdout


def test_evaluate_delivers_a_message_and_evaluations_list_it(sensed: EmbeddedStack, tmp_path: Path) -> None:
    payload = tmp_path / "m.json"
    payload.write_text('{"file": "a.csv"}')
    out = json.loads(
        invoke(
            "sensor",
            "evaluate",
            "inbox",
            "--data",
            f"@{payload}",
            "--attribute",
            "k=v",
            "--json",
            env=_env(sensed),
        ).stdout
    )
    assert out["evaluationId"].startswith("inbox:manual:") and out["warning"] == "sensor is paused"
    listed = json.loads(invoke("sensor", "evaluations", "inbox", "--json", env=_env(sensed)).stdout)
    [evaluation] = listed["evaluations"]
    assert evaluation["trigger"] == "MANUAL" and evaluation["items"][0].startswith("msg:manual.")
    table = invoke("sensor", "evaluations", "inbox", "--status", "pending", env=_env(sensed)).stdout
    assert out["evaluationId"] in table


@pytest.mark.parametrize(
    "args",
    [
        ("show", "nope"),
        ("evaluations", "files", "--since", "yesterday"),
        ("evaluate", "files", "--data", "x"),
        ("evaluate", "inbox", "--attribute", "novalue"),
        ("evaluate", "inbox", "--data", "@/no/such/file"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_1(sensed: EmbeddedStack, args: tuple[str, ...]) -> None:
    result = invoke("sensor", *args, env=_env(sensed))
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and result.stderr.strip()


def test_a_sensor_run_shows_its_evaluation_as_its_source() -> None:
    from servo.cli._render import source_text

    trigger = {"type": "sensor", "sensorId": "files", "evaluationId": "files:v3:1"}
    assert source_text(trigger) == "sensor:files:v3:1"
    assert source_text({"type": "sensor"}) == "sensor"
