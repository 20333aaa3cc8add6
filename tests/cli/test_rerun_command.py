"""``servo rerun`` against a real embedded control plane (automation §8)."""

from __future__ import annotations

import json

import pytest
from servo.dev.embedded import EmbeddedStack

from tests.cli.conftest import invoke


def _env(stack: EmbeddedStack) -> dict[str, str]:
    return {"SERVO_API_URL": stack.api_url}


def _cancelled_chain(stack: EmbeddedStack) -> str:
    """A run of demo.a -> b -> c cancelled while queued: it ended, and none of its tasks succeeded."""
    created = json.loads(invoke("run", "demo.a", "--include-downstream", "--json", env=_env(stack)).stdout)
    assert invoke("cancel", created["runId"], env=_env(stack)).exit_code == 0
    return str(created["runId"])


def test_rerun_from_failure_creates_a_child_that_status_shows_with_its_parent(
    deployed: EmbeddedStack,
) -> None:
    parent = _cancelled_chain(deployed)
    result = invoke("rerun", parent, "--from-failure", "--label", "why=retry", "--json", env=_env(deployed))
    assert result.exit_code == 0, result.stderr
    child = json.loads(result.stdout)
    assert (
        child["created"] is True and child["parentRunId"] == parent and child["rerunKind"] == "FROM_FAILURE"
    )
    again = invoke("rerun", parent, "--from-failure", "--label", "why=retry", env=_env(deployed))
    assert again.exit_code == 0 and f"Existing run (run key matched) {child['runId']}" in again.stdout
    assert f"Rerun (from failure) of {parent}" in again.stdout

    shown = json.loads(invoke("status", child["runId"], "--json", env=_env(deployed)).stdout)
    assert sorted(t["taskKey"] for t in shown["tasks"]) == ["demo.a", "demo.b", "demo.c"]
    assert shown["labels"]["why"] == "retry" and shown["rootRunId"] == parent
    table = invoke("status", child["runId"], env=_env(deployed))
    assert f"Rerun (from failure) of {parent}" in table.stdout


def test_rerun_of_a_subset_with_downstream(deployed: EmbeddedStack) -> None:
    parent = _cancelled_chain(deployed)
    result = invoke(
        "rerun", parent, "--asset", "demo.b", "--include-downstream", "--json", env=_env(deployed)
    )
    assert result.exit_code == 0, result.stderr
    child = json.loads(result.stdout)
    assert child["rerunKind"] == "SUBSET"
    shown = json.loads(invoke("status", child["runId"], "--json", env=_env(deployed)).stdout)
    assert sorted(t["taskKey"] for t in shown["tasks"]) == ["demo.b", "demo.c"]


def test_a_run_key_held_by_another_rerun_is_one_error_line(deployed: EmbeddedStack) -> None:
    parent = _cancelled_chain(deployed)
    assert invoke("rerun", parent, "--asset", "demo.b", "--run-key", "k1", env=_env(deployed)).exit_code == 0
    clash = invoke("rerun", parent, "--from-failure", "--run-key", "k1", env=_env(deployed))
    assert clash.exit_code == 1
    assert clash.stderr.startswith("error: run key 'k1' is held by run ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give either --from-failure or --asset KEY"),
        (("--from-failure", "--asset", "demo.b"), "give either --from-failure or --asset KEY"),
        (("--from-failure", "--include-downstream"), "go with --asset"),
    ],
)
def test_bad_flags_are_one_error_line(deployed: EmbeddedStack, args: tuple[str, ...], message: str) -> None:
    result = invoke("rerun", "01ARZ3NDEKTSV4RRFFQ69G5FAV", *args, env=_env(deployed))
    assert result.exit_code == 1 and message in result.stderr


def test_rerun_of_a_run_still_going_is_refused(deployed: EmbeddedStack) -> None:
    created = json.loads(invoke("run", "demo.a", "--json", env=_env(deployed)).stdout)
    result = invoke("rerun", created["runId"], "--from-failure", env=_env(deployed))
    assert result.exit_code == 1 and "only an ended run can be rerun" in result.stderr
