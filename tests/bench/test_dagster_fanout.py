"""The bench's Dagster fan-out rows: the graph Dagster gets, how the runner's output is read, the ratios
and the goal judged from them. (Dagster itself lives in the bench's own venv, not in the test venv.)"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import dagster_cmp, goals, local_stack
from bench._graphs import fanout_keys, write_dagster_fanout

GOAL = "goal.1,000-task fan-out >= 5x faster than Dagster materialize() with a persistent instance (embedded)"


def _assets(path: Path) -> dict[str, list[str]]:
    """Each ``@asset`` function of a generated module → the names in its ``deps``."""
    out: dict[str, list[str]] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            deps: list[str] = []
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call):
                    assert isinstance(deco.func, ast.Name) and deco.func.id == "asset"
                    (kw,) = deco.keywords
                    assert kw.arg == "deps" and isinstance(kw.value, ast.List)
                    deps = [e.id for e in kw.value.elts if isinstance(e, ast.Name)]
                else:
                    assert isinstance(deco, ast.Name) and deco.id == "asset"
            out[node.name] = deps
    return out


def test_dagster_gets_the_fanout_servo_runs(tmp_path: Path) -> None:
    assets = _assets(write_dagster_fanout(tmp_path / "g.py", 3))
    servo_names = [key.split(".", 1)[1] for key in fanout_keys(3)]
    assert list(assets) == servo_names == ["root", "c0000", "c0001", "c0002"]
    assert assets == {"root": [], "c0000": ["root"], "c0001": ["root"], "c0002": ["root"]}


def _line(**changes: object) -> str:
    figures = {"mode": "persistent", "assets": 4, "materialized": 4, "success": True, "import_s": 1.0}
    figures |= {"define_s": 0.1, "instance_s": 0.5, "materialize_s": 2.0}
    return json.dumps({**figures, **changes})


def test_the_runners_last_line_holds_its_figures() -> None:
    figures = dagster_cmp.parse_in_process(f"a warning from dagster\n{_line()}\n", 4)
    assert figures["materialize_s"] == 2.0 and figures["instance_s"] == 0.5


@pytest.mark.parametrize(
    "stdout", ["", _line(success=False), _line(materialized=3), _line(assets=3, materialized=3)]
)
def test_a_run_that_did_not_materialize_every_asset_is_an_error(stdout: str) -> None:
    with pytest.raises(RuntimeError):
        dagster_cmp.parse_in_process(stdout, 4)


def test_an_unknown_instance_mode_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        dagster_cmp.materialize_fanout(tmp_path / "bin" / "dagster", tmp_path, 3, "sqlite")
    assert list(tmp_path.iterdir()) == []
    # The runner itself refuses it before importing Dagster (which this venv does not have).
    done = subprocess.run(
        [sys.executable, str(dagster_cmp.IN_PROCESS_RUNNER), str(tmp_path / "g.py"), "sqlite"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "mode must be one of" in done.stderr


def _figures(servo: float, persistent: float | None, memory: float | None) -> dict[str, float]:
    out = {f"embedded.{local_stack.FANOUT}.succeeded_s": servo}
    if persistent is not None:
        out[f"dagster.{local_stack.FANOUT}.persistent.materialize_s"] = persistent
    if memory is not None:
        out[f"dagster.{local_stack.FANOUT}.memory.materialize_s"] = memory
    return out


def test_both_instances_are_compared_with_the_embedded_fanout() -> None:
    ratios = local_stack._ratios(_figures(8.0, 41.0, 11.2))
    assert ratios == {
        "ratio.dagster_persistent_over_embedded.fanout1000": 5.1,
        "ratio.dagster_memory_over_embedded.fanout1000": 1.4,
    }
    assert local_stack._ratios(_figures(8.0, None, 11.2)) == {
        "ratio.dagster_memory_over_embedded.fanout1000": 1.4
    }


@pytest.mark.parametrize(("persistent", "verdict"), [(40.0, "met"), (39.0, "MISSED"), (None, "not measured")])
def test_the_goal_is_judged_on_the_persistent_instance(persistent: float | None, verdict: str) -> None:
    figures = _figures(8.0, persistent, 100.0)  # the in-memory ratio is information, never the goal
    assert goals.judge({**figures, **local_stack._ratios(figures)})[GOAL] == verdict
