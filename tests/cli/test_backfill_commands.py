"""``servo backfill ...`` against a real embedded control plane (no worker: runs stay queued)."""

from __future__ import annotations

import json

from servo.dev.embedded import EmbeddedStack

from tests.cli.conftest import invoke


def _env(stack: EmbeddedStack) -> dict[str, str]:
    return {"SERVO_API_URL": stack.api_url}


def _create(stack: EmbeddedStack, *args: str) -> dict[str, object]:
    result = invoke("backfill", "create", "demo.daily", *args, "--json", env=_env(stack))
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_create_list_show_and_the_same_key_names_the_same_backfill(deployed: EmbeddedStack) -> None:
    made = _create(
        deployed, "--from", "2025-01-01", "--to", "2025-01-10", "--chunk-size", "2", "--key", "jan"
    )
    assert made["created"] is True
    again = _create(
        deployed, "--from", "2025-01-01", "--to", "2025-01-10", "--chunk-size", "2", "--key", "jan"
    )
    assert again == {**made, "created": False}
    bf = str(made["backfillId"])
    shown = json.loads(invoke("backfill", "show", bf, "--json", env=_env(deployed)).stdout)
    assert shown["totalPartitions"] == 10 and shown["state"] == "RUNNING"
    assert shown["partitionCounts"]["running"] == 10  # chunk 2, at most 10 at once: all planned
    text = invoke("backfill", "show", bf, env=_env(deployed)).stdout
    assert "0/10 partitions done" in text and "PENDING -> RUNNING" in text
    listed = invoke("backfill", "list", env=_env(deployed)).stdout
    assert bf in listed and "demo.daily" in listed


def test_explicit_partitions_are_bare_values_or_name_value_pairs(deployed: EmbeddedStack) -> None:
    made = _create(deployed, "-p", "2025-01-03", "-p", "date=2025-01-01")
    shown = json.loads(
        invoke("backfill", "show", str(made["backfillId"]), "--json", env=_env(deployed)).stdout
    )
    assert shown["partitions"] == {"explicit": ["date=d:2025-01-03", "date=d:2025-01-01"]}  # as given
    assert shown["totalPartitions"] == 2


def test_pause_resume_and_cancel_report_the_move(deployed: EmbeddedStack) -> None:
    bf = str(_create(deployed, "--from", "2025-01-01", "--to", "2025-01-03")["backfillId"])
    paused = invoke("backfill", "pause", bf, "--reason", "ops", env=_env(deployed))
    assert paused.exit_code == 0 and "RUNNING -> PAUSED (version 3)" in paused.stdout
    assert "already PAUSED" in invoke("backfill", "pause", bf, env=_env(deployed)).stdout
    stale = invoke("backfill", "resume", bf, "--expect-version", "2", env=_env(deployed))
    assert stale.exit_code == 1 and "expectedStateVersion 2" in stale.stderr
    moved = json.loads(invoke("backfill", "cancel", bf, "--json", env=_env(deployed)).stdout)
    assert moved == {"backfillId": bf, "from": "PAUSED", "to": "CANCELLED", "stateVersion": 4}


def test_bad_input_is_one_line_and_exit_1(deployed: EmbeddedStack) -> None:
    cases = [
        (("demo.daily", "--from", "2025-01-05", "--to", "2025-01-01"), "partitions.range"),
        (("demo.a", "--from", "2025-01-01", "--to", "2025-01-02"), "not partitioned"),
        (("demo.daily", "--from", "2025-01-01", "-p", "2025-01-02"), "not both"),
        (("demo.daily",), "--from START --to END"),
        (("demo.daily", "-p", "yesterday"), "--partition yesterday"),
    ]
    for args, words in cases:
        result = invoke("backfill", "create", *args, env=_env(deployed))
        assert result.exit_code == 1, args
        assert words in result.stderr and result.stderr.strip().count("\n") <= 1, result.stderr
    unknown = invoke("backfill", "show", "bf_" + "a" * 26, env=_env(deployed))
    assert unknown.exit_code == 1 and "not found" in unknown.stderr
