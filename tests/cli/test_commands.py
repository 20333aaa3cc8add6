"""The commands against a real embedded control plane: what they send, print and return."""

from __future__ import annotations

import json
from pathlib import Path

from servo.dev.embedded import EmbeddedStack

from tests.cli.conftest import invoke


def _env(stack: EmbeddedStack) -> dict[str, str]:
    return {"SERVO_API_URL": stack.api_url}


def test_run_json_is_the_apis_answer(deployed: EmbeddedStack) -> None:
    result = invoke("run", "demo.a", "--json", env=_env(deployed))
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert set(body) == {"runId", "planId", "state", "created", "createdAt"}
    assert body["created"] is True
    run = json.loads(invoke("status", body["runId"], "--json", env=_env(deployed)).stdout)
    assert [t["taskKey"] for t in run["tasks"]] == ["demo.a"]


def test_selection_flags_reach_the_planner(deployed: EmbeddedStack) -> None:
    down = json.loads(invoke("run", "demo.a", "--include-downstream", "--json", env=_env(deployed)).stdout)
    up = json.loads(invoke("run", "demo.c", "--include-upstream", "--json", env=_env(deployed)).stdout)
    for created in (down, up):
        run = json.loads(invoke("status", created["runId"], "--json", env=_env(deployed)).stdout)
        assert sorted(t["taskKey"] for t in run["tasks"]) == ["demo.a", "demo.b", "demo.c"]


def test_run_key_returns_the_same_run(deployed: EmbeddedStack) -> None:
    first = invoke("run", "demo.a", "demo.b", "--run-key", "rk-1", "--json", env=_env(deployed))
    again = invoke("run", "demo.b", "demo.a", "--run-key", "rk-1", env=_env(deployed))
    run_id = json.loads(first.stdout)["runId"]
    assert again.exit_code == 0
    assert f"Existing run (run key matched) {run_id}" in again.stdout


def test_labels_and_timeout_are_sent(deployed: EmbeddedStack) -> None:
    created = invoke(
        "run", "demo.a", "--label", "team=data", "--label", "env=dev", "--timeout", "600", "--json",
        env=_env(deployed),
    )  # fmt: skip
    run = json.loads(
        invoke("status", json.loads(created.stdout)["runId"], "--json", env=_env(deployed)).stdout
    )
    assert run["labels"] == {"env": "dev", "team": "data"}


def test_status_lists_recent_runs(deployed: EmbeddedStack) -> None:
    ids = [
        json.loads(invoke("run", "demo.a", "--json", env=_env(deployed)).stdout)["runId"] for _ in range(3)
    ]
    table = invoke("status", env=_env(deployed))
    assert table.exit_code == 0
    for run_id in ids:
        assert run_id in table.stdout
    assert "RUN" in table.stdout and "STATE" in table.stdout
    limited = json.loads(invoke("status", "-n", "2", "--json", env=_env(deployed)).stdout)
    assert len(limited["runs"]) == 2


def test_status_of_one_run_shows_its_tasks(deployed: EmbeddedStack) -> None:
    created = json.loads(invoke("run", "demo.a", "--include-downstream", "--json", env=_env(deployed)).stdout)
    result = invoke("status", created["runId"], env=_env(deployed))
    assert result.exit_code == 0
    for key in ("demo.a", "demo.b", "demo.c", "TASK", "ATTEMPT", "DURATION"):
        assert key in result.stdout


def test_cancel_a_queued_run(deployed: EmbeddedStack) -> None:
    created = json.loads(invoke("run", "demo.a", "--json", env=_env(deployed)).stdout)
    result = invoke("cancel", created["runId"], "--reason", "testing", env=_env(deployed))
    assert result.exit_code == 0, result.stderr
    assert "CANCELLED" in result.stdout
    run = json.loads(invoke("status", created["runId"], "--json", env=_env(deployed)).stdout)
    assert run["state"] == "CANCELLED"
    assert run["cancelReason"] == "testing"
    again = invoke("cancel", created["runId"], env=_env(deployed))
    assert again.exit_code == 0  # repeating a cancel changes nothing and is not an error


def test_wait_exits_non_zero_unless_the_run_succeeded(deployed: EmbeddedStack) -> None:
    created = json.loads(invoke("run", "demo.a", "--run-key", "k", "--json", env=_env(deployed)).stdout)
    invoke("cancel", created["runId"], env=_env(deployed))
    # The run key answers with the cancelled run, so the wait ends at once.
    waited = invoke("run", "demo.a", "--run-key", "k", "--wait", env=_env(deployed))
    assert waited.exit_code == 1
    assert waited.stderr == (
        f"error: run {created['runId']} ended CANCELLED (see `servo logs {created['runId']}`)\n"
    )
    assert "demo.a" in waited.stdout
    watched = invoke("status", created["runId"], "--watch", "--json", env=_env(deployed))
    assert watched.exit_code == 0  # status reports; only an API error fails it
    assert json.loads(watched.stdout)["state"] == "CANCELLED"


def test_logs_of_a_run_without_logs(deployed: EmbeddedStack) -> None:
    created = json.loads(invoke("run", "demo.a", "--json", env=_env(deployed)).stdout)
    result = invoke("logs", created["runId"], env=_env(deployed))
    assert result.exit_code == 1
    assert result.stderr == f"error: no logs for run {created['runId']}\n"


def test_init_scaffolds_a_project(tmp_path: Path) -> None:
    result = invoke("init", str(tmp_path / "my_project"))
    assert result.exit_code == 0, result.stderr
    project = tmp_path / "my_project"
    for name in ("servo.toml", "assets/example.py", "Dockerfile", "README.md", ".gitignore"):
        assert (project / name).is_file(), name
    assert "servo worker" in (project / "Dockerfile").read_text()
    assert 'namespace="my_project"' in (project / "assets/example.py").read_text()
    assert "servo run my_project.raw --include-downstream --wait" in result.stdout
    again = invoke("init", str(project))
    assert again.exit_code == 1
    assert again.stderr.startswith(f"error: {project} already exists")


def test_init_rejects_a_name_without_a_namespace(tmp_path: Path) -> None:
    result = invoke("init", str(tmp_path / "123"))
    assert result.exit_code == 1
    assert "cannot derive an asset namespace" in result.stderr


def test_version_and_help() -> None:
    assert invoke("--version").stdout.startswith("servo ")
    for command in ("init", "validate", "deploy", "run", "status", "logs", "cancel", "dev", "worker"):
        result = invoke(command, "--help")
        assert result.exit_code == 0
        assert "Example" in result.stdout, command
