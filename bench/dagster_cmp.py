"""The same no-op chains with Dagster, timed as a user waits for them: the whole
``dagster asset materialize --select '*' -f <file>`` command, default executor, fresh DAGSTER_HOME
(a persistent instance, so the default multiprocess executor is the one that runs).

Dagster lives in its own venv (``scripts/bench_dagster_env.sh``), so its dependencies never meet Servo's.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench._graphs import write_dagster_chain

REPO = Path(__file__).resolve().parents[1]
ENV_SCRIPT = REPO / "scripts" / "bench_dagster_env.sh"
COMMAND_TIMEOUT_S = 300


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
    home = workdir / f"dagster_home_{n}_{time.monotonic_ns()}"
    home.mkdir(parents=True)
    # Telemetry off: the bench talks to 127.0.0.1 only; it does not change how a run executes.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
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
