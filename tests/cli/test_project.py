"""validate / deploy / partition tagging through the real SDK and a real control plane."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from servo.dev.embedded import EmbeddedStack

from tests.cli.conftest import invoke

PARTITIONED = """
from servo import DailyPartitions, StaticPartitions, asset


@asset(namespace="sales", partitions=DailyPartitions("date"))
def daily(ctx):
    print("daily")


@asset(namespace="sales", partitions=StaticPartitions("region", ["eu", "us"]))
def regional(ctx):
    print("regional")


@asset(namespace="sales", deps=[daily])
def rollup(ctx):
    print("rollup")
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    (root / "assets").mkdir(parents=True)
    (root / "assets" / "sales.py").write_text(PARTITIONED, encoding="utf-8")
    (root / "servo.toml").write_text('[project]\nname = "proj"\n', encoding="utf-8")
    monkeypatch.chdir(root)
    return root


def test_validate_lists_the_assets(project: Path) -> None:
    result = invoke("validate")
    assert result.exit_code == 0, result.stderr
    assert "sales.daily" in result.stdout and "3 assets valid" in result.stdout


def test_validate_names_file_and_line_of_each_problem(project: Path) -> None:
    (project / "assets" / "broken.py").write_text(
        'from servo import asset\n\n\n@asset(namespace="sales", deps=["sales.nope"])\n'
        "def bad(ctx):\n    pass\n"
    )
    result = invoke("validate")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines)
    assert any("broken.py:" in line and "unknown asset sales.nope" in line for line in lines), lines
    assert "Traceback" not in result.stderr


def test_dry_run_builds_without_uploading(project: Path) -> None:
    result = invoke("deploy", "--dry-run", "--json", "--api-url", "http://127.0.0.1:9")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert [a["key"]["name"] for a in manifest["assets"]] == ["daily", "regional", "rollup"]
    assert (project / ".servo" / "state.json").is_file()  # stable asset ids, kept across builds


def _deploy(stack: EmbeddedStack) -> dict[str, object]:
    result = invoke("deploy", "--json", env={"SERVO_API_URL": stack.api_url})
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_deploy_returns_the_manifest_id(project: Path, stack: EmbeddedStack) -> None:
    answer = _deploy(stack)
    assert answer["assetCount"] == 3
    assert len(str(answer["manifestId"])) == 26
    human = invoke("deploy", env={"SERVO_API_URL": stack.api_url})
    assert "Deployed 3 assets to workspace default: manifest" in human.stdout


@pytest.mark.parametrize(
    ("asset", "partition", "expected"),
    [
        ("sales.daily", "date=2025-01-15", "date=d:2025-01-15"),
        ("sales.regional", "region=eu", "region=s:ZXU"),
    ],
)
def test_partition_values_are_tagged_by_dimension_kind(
    project: Path, stack: EmbeddedStack, asset: str, partition: str, expected: str
) -> None:
    _deploy(stack)
    env = {"SERVO_API_URL": stack.api_url}
    created = json.loads(invoke("run", asset, "-p", partition, "--json", env=env).stdout)
    run = json.loads(invoke("status", created["runId"], "--json", env=env).stdout)
    assert run["tasks"][0]["partitionKey"] == expected


@pytest.mark.parametrize(
    ("asset", "partition", "message"),
    [
        ("sales.daily", "date=yesterday", "date"),
        ("sales.regional", "region=asia", "region"),
        ("sales.daily", "day=2025-01-15", "unknown partition dimension"),
    ],
)
def test_bad_partition_values_are_one_line(
    project: Path, stack: EmbeddedStack, asset: str, partition: str, message: str
) -> None:
    _deploy(stack)
    result = invoke("run", asset, "-p", partition, env={"SERVO_API_URL": stack.api_url})
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_partitioned_asset_without_partition_is_the_apis_message(project: Path, stack: EmbeddedStack) -> None:
    _deploy(stack)
    result = invoke("run", "sales.daily", env={"SERVO_API_URL": stack.api_url})
    assert result.exit_code == 1
    assert result.stderr == "error: assets sales.daily are partitioned by date; pass -p NAME=VALUE\n"
