"""The same no-op graphs with Dagster, timed as a user waits for them.

Chains: the whole ``dagster asset materialize --select '*' -f <file>`` command, default executor, fresh
DAGSTER_HOME (a persistent instance, so the default multiprocess executor is the one that runs).
The 1,000-task fan-out: ``dagster.materialize()`` in one process (the in-process executor), with the
persistent instance of a fresh DAGSTER_HOME and with an ephemeral in-memory one (``_dagster_inprocess``).

Dagster lives in its own venv (``scripts/bench_dagster_env.sh``), so its dependencies never meet Servo's.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench._graphs import write_dagster_chain, write_dagster_fanout

REPO = Path(__file__).resolve().parents[1]
ENV_SCRIPT = REPO / "scripts" / "bench_dagster_env.sh"
COMMAND_TIMEOUT_S = 300
# The persistent instance's fan-out took 41-43 s on a quiet machine (issue 21), over 300 s on this
# one shared by several sessions: the bound only stops a hung run.
FANOUT_TIMEOUT_S = 900
IN_PROCESS_RUNNER = Path(__file__).resolve().parent / "_dagster_inprocess.py"
IN_PROCESS_MODES = ("persistent", "memory")


class DagsterUnavailable(RuntimeError):
    """The Dagster venv could not be made (no registry access, pip failure)."""


def ensure_env() -> Path:
    """Create or reuse ``.venv-dagster``; returns its ``dagster`` executable."""
    done = subprocess.run(
        ["bash", str(ENV_SCRIPT)], capture_output=True, text=True, timeout=900, check=False, cwd=REPO
    )
    if done.returncode != 0:
        raise DagsterUnavailable(f"{ENV_SCRIPT.name} failed ({done.returncode}): {done.stderr[-800:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def version(dagster: Path) -> str:
    done = subprocess.run(
        [str(dagster), "--version"], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip().rsplit(" ", 1)[-1]


def materialize(dagster: Path, workdir: Path, n: int) -> float:
    """Seconds for one ``dagster asset materialize`` of an ``n``-chain, process start to exit."""
    source = write_dagster_chain(workdir / f"dagster_chain{n}.py", n)
    env = {**os.environ, "DAGSTER_HOME": str(fresh_home(workdir, f"chain{n}"))}
    log = workdir / f"dagster_chain{n}.log"
    start = time.perf_counter()
    with log.open("wb") as out:
        done = subprocess.run(
            [str(dagster), "asset", "materialize", "--select", "*", "-f", str(source)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    elapsed = time.perf_counter() - start
    text = log.read_text(errors="replace")
    # RUN_SUCCESS means every step succeeded; step lines are not counted, since the step processes'
    # log lines can interleave on the shared output.
    if done.returncode != 0 or "RUN_SUCCESS" not in text:
        raise RuntimeError(f"dagster chain{n} failed ({done.returncode}):\n{text[-1500:]}")
    return elapsed


def fresh_home(workdir: Path, label: str) -> Path:
    """A new DAGSTER_HOME: a dagster.yaml with the default (SQLite) storage, telemetry off (the bench
    talks to 127.0.0.1 only; it does not change how a run executes)."""
    home = workdir / f"dagster_home_{label}_{time.monotonic_ns()}"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def materialize_fanout(dagster: Path, workdir: Path, children: int, mode: str) -> dict[str, Any]:
    """``dagster.materialize()`` of a fan-out of one root and ``children`` dependents in a process of
    Dagster's venv: the runner's timings, plus ``process_s`` from process start to exit."""
    if mode not in IN_PROCESS_MODES:
        raise ValueError(f"mode must be one of {IN_PROCESS_MODES}, not {mode!r}")
    source = write_dagster_fanout(workdir / f"dagster_fanout{children + 1}.py", children)
    env = {**os.environ, "DAGSTER_HOME": str(fresh_home(workdir, f"fanout_{mode}"))}
    python = dagster.parent / "python"
    start = time.perf_counter()
    done = subprocess.run(
        [str(python), str(IN_PROCESS_RUNNER), str(source), mode],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=FANOUT_TIMEOUT_S,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"dagster fan-out ({mode}) failed ({done.returncode}):\n{done.stderr[-1500:]}")
    return {**parse_in_process(done.stdout, children + 1), "process_s": round(elapsed, 3)}


def parse_in_process(stdout: str, assets: int) -> dict[str, Any]:
    """The runner's JSON line (its last line of output); an error unless all ``assets`` materialized."""
    lines = stdout.strip().splitlines()
    if not lines:
        raise RuntimeError("the Dagster runner printed nothing")
    figures: dict[str, Any] = json.loads(lines[-1])
    if not figures.get("success") or figures.get("materialized") != assets or figures.get("assets") != assets:
        raise RuntimeError(f"dagster did not materialize all {assets} assets: {figures}")
    return figures
