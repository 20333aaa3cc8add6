"""What the CLI shows a person: run order, the run list, durations, conflicts, suggestions, every problem
at once, timestamps and shell completion (issue 17 §10)."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from servo.cli import cli
from servo.cli._render import duration
from servo.dev.embedded import EmbeddedStack

from tests.cli.conftest import MANIFEST, deploy_manifest, invoke, manifest_asset


def _env(stack: EmbeddedStack) -> dict[str, str]:
    return {"SERVO_API_URL": stack.api_url}


def _asset(name: str, deps: tuple[str, ...] = (), dims: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return manifest_asset(name, deps, dims, namespace="shop")


# Alphabetical order is the reverse of the data flow: zeta_load -> middle -> alpha_report.
SHOP = {
    **MANIFEST,
    "assets": [
        _asset("zeta_load"),
        _asset("middle", ("shop.zeta_load",)),
        _asset("alpha_report", ("shop.middle",)),
        _asset("orders", dims=[{"name": "region", "kind": "static", "values": ["eu", "us"]}]),
    ],
}


@pytest.fixture
def shop(stack: EmbeddedStack) -> EmbeddedStack:
    return deploy_manifest(stack, SHOP)


def _run(stack: EmbeddedStack, *args: str) -> str:
    result = invoke("run", *args, "--json", env=_env(stack))
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["runId"])


def test_tasks_are_shown_in_run_order_not_alphabetically(shop: EmbeddedStack) -> None:
    run_id = _run(shop, "shop.zeta_load", "--include-downstream")
    body = json.loads(invoke("status", run_id, "--json", env=_env(shop)).stdout)
    assert [t["taskKey"] for t in body["tasks"]] == ["shop.zeta_load", "shop.middle", "shop.alpha_report"]
    table = invoke("status", run_id, env=_env(shop)).stdout
    assert table.index("shop.zeta_load") < table.index("shop.middle") < table.index("shop.alpha_report")


def test_the_run_list_shows_assets_partition_and_start(shop: EmbeddedStack) -> None:
    _run(shop, "shop.zeta_load", "--include-downstream")
    _run(shop, "shop.orders", "-p", "region=eu")
    table = invoke("status", env=_env(shop)).stdout
    header = table.splitlines()[0]
    for column in ("ASSETS", "PARTITION", "CREATED", "TRIGGER"):
        assert column in header
    rows = {line.split()[0]: line for line in table.splitlines()[2:] if line.strip()}
    assert len(rows) == 2
    by_assets = {("shop.orders" in line): line for line in rows.values()}
    assert "region=eu" in by_assets[True]  # the user's value, never the internal encoding
    assert "s:" not in by_assets[True]
    assert "shop.zeta_load +2" in by_assets[False]  # the root, and how many more ran with it
    assert all(" manual " in line for line in rows.values())  # started from the CLI, not a schedule
    listed = json.loads(invoke("status", "--json", env=_env(shop)).stdout)["runs"]
    assert [r["trigger"]["type"] for r in listed] == ["manual", "manual"]
    today = datetime.now(UTC).astimezone().strftime("%Y-%m-%d")
    assert today in table  # the start date, not a bare time of day


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(3.456, "3.46s"), (42, "42s"), (116, "1m56s"), (60, "1m00s"), (3599, "59m59s"), (7322, "2h02m")],
)
def test_durations_read_like_1m56s(seconds: float, shown: str) -> None:
    start = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    end = start.timestamp() + seconds
    iso = lambda t: datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")  # noqa: E731
    assert duration(iso(start.timestamp()), iso(end)) == shown


def test_a_run_key_conflict_names_the_run_holding_the_key(shop: EmbeddedStack) -> None:
    holder = _run(shop, "shop.zeta_load", "--run-key", "nightly")
    other = invoke("run", "shop.middle", "--run-key", "nightly", env=_env(shop))
    assert other.exit_code == 1
    assert f"run key 'nightly' is held by run {holder}" in other.stderr
    assert len(other.stderr.splitlines()) == 1


def test_an_unknown_asset_key_suggests_the_close_ones(shop: EmbeddedStack) -> None:
    result = invoke("run", "shop.midle", env=_env(shop))
    assert result.exit_code == 1
    assert result.stderr == "error: unknown asset keys: shop.midle (did you mean shop.middle?)\n"
    far = invoke("run", "shop.qqqqqqqq", env=_env(shop))
    assert far.stderr == "error: unknown asset keys: shop.qqqqqqqq\n"


def test_validate_reports_every_problem_not_just_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "proj"
    (root / "assets").mkdir(parents=True)
    (root / "servo.toml").write_text('[project]\nname = "proj"\n', encoding="utf-8")
    (root / "assets" / "broken.py").write_text("import no_such_module_anywhere\n", encoding="utf-8")
    (root / "assets" / "orphan.py").write_text(
        'from servo import asset\n\n\n@asset(namespace="p", deps=["p.nope"])\ndef orphan(ctx):\n    pass\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(root)
    result = invoke("validate")
    assert result.exit_code == 1
    assert "broken.py" in result.stderr and "no_such_module_anywhere" in result.stderr
    assert "orphan.py:4" in result.stderr and "unknown asset p.nope" in result.stderr


def test_dev_console_lines_carry_a_timestamp(capsys: pytest.CaptureFixture[str]) -> None:
    from servo.cli._commands.dev import console_logging

    with console_logging(verbose=False):
        logging.getLogger("servo.dispatch").warning("delivery of d_1 failed")
    line = capsys.readouterr().err.strip()
    assert re.fullmatch(r"\d\d:\d\d:\d\d delivery of d_1 failed", line), line


def _complete(stack: EmbeddedStack, words: str) -> list[str]:
    cword = str(len(words.split(" ")) - 1)
    env = {"_SERVO_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": cword, **_env(stack)}
    result = CliRunner().invoke(cli, [], prog_name="servo", env=env)
    return [line.split(",", 1)[1] for line in result.stdout.splitlines()]


def test_completion_offers_asset_keys_and_run_ids(shop: EmbeddedStack) -> None:
    run_id = _run(shop, "shop.zeta_load")
    assert _complete(shop, "servo run shop.m") == ["shop.middle"]
    assert set(_complete(shop, "servo run ")) >= {"shop.zeta_load", "shop.middle", "shop.alpha_report"}
    assert _complete(shop, f"servo status {run_id[:10]}") == [run_id]
    assert _complete(shop, f"servo logs {run_id[:10]}") == [run_id]
    assert _complete(shop, f"servo cancel {run_id[:10]}") == [run_id]


def test_quiet_prints_the_run_id_alone_for_scripts(shop: EmbeddedStack) -> None:
    result = invoke("run", "shop.zeta_load", "-q", env=_env(shop))
    assert result.exit_code == 0, result.stderr
    run_id = result.stdout.strip()
    assert result.stdout == run_id + "\n" and len(run_id) == 26
    shown = json.loads(invoke("status", run_id, "--json", env=_env(shop)).stdout)
    assert shown["runId"] == run_id


def test_a_failed_runs_key_is_reused_only_with_retry_failed(shop: EmbeddedStack) -> None:
    first = _run(shop, "shop.zeta_load", "--run-key", "nightly-1")
    assert invoke("cancel", first, env=_env(shop)).exit_code == 0  # ended CANCELLED: not a success
    same = _run(shop, "shop.zeta_load", "--run-key", "nightly-1")
    assert same == first  # without the flag, the key keeps answering with its run, whatever its end
    again = _run(shop, "shop.zeta_load", "--run-key", "nightly-1", "--retry-failed")
    assert again != first
    shown = json.loads(invoke("status", again, "--json", env=_env(shop)).stdout)
    assert shown["runKey"] == "nightly-1#2"
    # Still idempotent: the retry's own key answers with the retry while it has not failed.
    assert _run(shop, "shop.zeta_load", "--run-key", "nightly-1", "--retry-failed") == again
    lonely = invoke("run", "shop.zeta_load", "--retry-failed", env=_env(shop))
    assert lonely.exit_code == 1 and "--retry-failed needs --run-key" in lonely.stderr


def test_status_shows_the_users_partition_and_json_carries_both_spellings(shop: EmbeddedStack) -> None:
    """Issue 17 §7: the wire form stays in ``partitionKey`` (contracts.md); a person only sees ``eu``."""
    run_id = _run(shop, "shop.orders", "-p", "region=eu")
    body = json.loads(invoke("status", run_id, "--json", env=_env(shop)).stdout)
    (task,) = body["tasks"]
    assert task["partitionKey"].startswith("region=s:")  # the canonical wire form, unchanged
    assert task["partition"] == {"region": "eu"}  # the user's spelling, beside it
    assert body["partition"] == {"region": "eu"}
    shown = invoke("status", run_id, env=_env(shop)).stdout
    assert "region=eu" in shown
    assert "s:" not in shown and task["partitionKey"] not in shown
    unpartitioned = json.loads(
        invoke("status", _run(shop, "shop.zeta_load"), "--json", env=_env(shop)).stdout
    )
    assert "partition" not in unpartitioned and "partition" not in unpartitioned["tasks"][0]
