"""Bad input: one clear line on stderr, exit 1, no traceback (unless --verbose)."""

from __future__ import annotations

from pathlib import Path

import pytest
from servo.dev.embedded import EmbeddedStack

from tests.cli.conftest import invoke

DEAD_URL = "http://127.0.0.1:9"


def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unknown_asset(deployed: EmbeddedStack) -> None:
    result = invoke("run", "demo.x", env={"SERVO_API_URL": deployed.api_url})
    assert result.exit_code == 1
    assert _one_line(result.stderr) == "error: unknown asset keys: demo.x"


def test_unknown_asset_with_a_partition(deployed: EmbeddedStack) -> None:
    result = invoke("run", "demo.x", "-p", "date=2025-01-15", env={"SERVO_API_URL": deployed.api_url})
    assert result.exit_code == 1
    assert _one_line(result.stderr) == "error: unknown asset keys: demo.x"


@pytest.mark.parametrize("raw", ["date", "=2025-01-15", "date="])
def test_malformed_partition(deployed: EmbeddedStack, raw: str) -> None:
    result = invoke("run", "demo.daily", "-p", raw, env={"SERVO_API_URL": deployed.api_url})
    assert result.exit_code == 1
    assert _one_line(result.stderr) == (
        f"error: malformed partition {raw!r}: expected key=value (e.g. -p date=2025-01-15)"
    )


def test_partition_on_an_unpartitioned_asset(deployed: EmbeddedStack) -> None:
    result = invoke("run", "demo.a", "-p", "date=2025-01-15", env={"SERVO_API_URL": deployed.api_url})
    assert result.exit_code == 1
    assert _one_line(result.stderr) == "error: asset demo.a is not partitioned; drop -p/--partition"


def test_malformed_label(deployed: EmbeddedStack) -> None:
    result = invoke("run", "demo.a", "--label", "team", env={"SERVO_API_URL": deployed.api_url})
    assert result.exit_code == 1
    assert "malformed label 'team'" in _one_line(result.stderr)


def test_invalid_asset_key_is_the_apis_message(deployed: EmbeddedStack) -> None:
    result = invoke("run", "Demo..A", env={"SERVO_API_URL": deployed.api_url})
    assert result.exit_code == 1
    assert _one_line(result.stderr).startswith("error: invalid selection")


def test_missing_config_outside_a_project() -> None:
    result = invoke("deploy")
    assert result.exit_code == 1
    line = _one_line(result.stderr)
    assert line.startswith(f"error: missing config: no servo.toml in {Path.cwd().resolve()} or its parents")
    assert "servo init NAME" in line


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "01JD3F0000000000000000000"),
        ("run", "demo.a"),
        ("logs", "01JD3F0000000000000000000"),
        ("cancel", "01JD3F0000000000000000000"),
    ],
)
def test_api_down(args: tuple[str, ...]) -> None:
    result = invoke(*args, env={"SERVO_API_URL": DEAD_URL})
    assert result.exit_code == 1
    assert _one_line(result.stderr) == (
        f"error: cannot reach the Servo API at {DEAD_URL}: is `servo dev` running? "
        "(API URL from env SERVO_API_URL)"
    )
    assert result.stdout == ""


def test_verbose_adds_the_traceback() -> None:
    result = invoke("-v", "status", env={"SERVO_API_URL": DEAD_URL})
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: cannot reach the Servo API")


def test_unknown_run(stack: EmbeddedStack) -> None:
    result = invoke("status", "01JD3F0000000000000000000", env={"SERVO_API_URL": stack.api_url})
    assert result.exit_code == 1
    assert _one_line(result.stderr) == (
        "error: run 01JD3F0000000000000000000 not found in workspace 'default'"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("run",), "error: Missing argument 'ASSET...'. (see `servo run --help`)"),
        (("run", "demo.a", "--timeout", "0"), "error: Invalid value for '--timeout'"),
        (("nope",), "error: No such command 'nope'."),
        (("status", "--bogus"), "error: No such option '--bogus'. (see `servo status --help`)"),
    ],
)
def test_usage_errors_are_one_line_and_exit_1(args: tuple[str, ...], expected: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 1
    assert _one_line(result.stderr).startswith(expected)


def test_watch_without_a_run_id(stack: EmbeddedStack) -> None:
    result = invoke("status", "--watch", env={"SERVO_API_URL": stack.api_url})
    assert result.exit_code == 1
    assert _one_line(result.stderr).startswith("error: --watch needs a RUN_ID")


def test_unauthorized_names_the_token(tmp_path: Path) -> None:
    with EmbeddedStack(
        data_dir=tmp_path / "authed",
        port=0,
        worker_url="http://127.0.0.1:9/dispatch",
        sweep_interval_s=0,
        settings_overrides={"api_token": "s3cret"},
    ) as authed:
        denied = invoke("status", env={"SERVO_API_URL": authed.api_url})
        assert denied.exit_code == 1
        assert _one_line(denied.stderr) == (
            "error: missing or invalid bearer token (set SERVO_TOKEN to the API's bearer token)"
        )
        allowed = invoke("status", "--json", env={"SERVO_API_URL": authed.api_url, "SERVO_TOKEN": "s3cret"})
        assert allowed.exit_code == 0, allowed.stderr
