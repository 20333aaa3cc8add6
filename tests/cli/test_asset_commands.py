"""``servo asset list|show`` against a real embedded control plane (automation §8)."""

from __future__ import annotations

import json

import requests
from servo.dev.embedded import EmbeddedStack

from tests.cli.conftest import invoke


def _env(stack: EmbeddedStack) -> dict[str, str]:
    return {"SERVO_API_URL": stack.api_url}


def test_list_shows_every_deployed_asset_and_json_is_the_apis_answer(deployed: EmbeddedStack) -> None:
    listed = invoke("asset", "list", env=_env(deployed))
    assert listed.exit_code == 0
    for key in ("demo.a", "demo.b", "demo.c", "demo.daily", "demo.regional"):
        assert key in listed.stdout
    assert "NEVER_MATERIALIZED" in listed.stdout
    answer = json.loads(invoke("asset", "list", "--json", env=_env(deployed)).stdout)
    api = requests.get(f"{deployed.api_url}/v1/workspaces/default/assets", timeout=10).json()
    assert [a["assetKey"] for a in answer["assets"]] == [a["assetKey"] for a in api["assets"]]
    stale = json.loads(
        invoke("asset", "list", "--stale", "--prefix", "demo.re", "--json", env=_env(deployed)).stdout
    )
    assert [a["assetKey"] for a in stale["assets"]] == ["demo.regional"]


def test_show_prints_the_summary_and_partitions_and_json_holds_both(deployed: EmbeddedStack) -> None:
    shown = invoke("asset", "show", "demo.regional", env=_env(deployed))
    assert shown.exit_code == 0
    assert "demo.regional" in shown.stdout and "0 of 2 materialized" in shown.stdout
    assert "No partition attempted yet." in shown.stdout
    answer = json.loads(invoke("asset", "show", "demo.regional", "--json", env=_env(deployed)).stdout)
    assert answer["assetKey"] == "demo.regional" and answer["partitions"]["total"] == 2
    assert answer["partitionStatus"] == []


def test_an_unknown_asset_or_bad_option_is_one_error_line_and_exit_1(deployed: EmbeddedStack) -> None:
    result = invoke("asset", "show", "demo.nope", env=_env(deployed))
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "demo.nope" in result.stderr
    bad = invoke("asset", "list", "--as-of", "yesterday", env=_env(deployed))
    assert bad.exit_code != 0 and "asOf" in bad.stderr
