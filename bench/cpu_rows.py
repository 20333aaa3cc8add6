"""CPU per task on the embedded stack alone (issue 21): the lone chains, the 1,000-task fan-out and the
five 20-chains in flight together, without the rest of ``make bench``.

Each repeat starts a fresh stack; the least figure of each row is kept, since on a shared machine other
work can only add to a measurement. ``make bench`` reports the same ``cpu.*`` keys from its own runs.

    PYTHONPATH=shared:. python -m bench.cpu_rows [repeats]
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

from bench import _stacks, cost, e2e
from bench._graphs import write_servo_project
from bench.local_stack import (
    CHAINS,
    CONCURRENT,
    CONCURRENT_CHAIN,
    CONCURRENT_RUNS,
    FANOUT_CHILDREN,
    FANOUT_TIMEOUT_S,
    REPS,
)


def once(root: Path) -> dict[str, Any]:
    project = write_servo_project(root / "project", CHAINS, (FANOUT_CHILDREN,))
    out: dict[str, Any] = {}
    with _stacks.embedded(project, root / "embedded") as target:
        http = requests.Session()
        # One warm-up run and the timed runs of each lone chain, as `make bench` runs them.
        _, counted, _ = e2e.run_chains(target, http, project, CHAINS, REPS)
        for n, m in counted.items():
            out.update(cost.cpu_results(f"embedded.chain{n}", m))
        _, m = e2e.run_fanout(target, http, project, FANOUT_CHILDREN, FANOUT_TIMEOUT_S)
        out.update(cost.cpu_results(f"embedded.fanout{FANOUT_CHILDREN + 1}", m))
        _, m = e2e.run_concurrent_chains(target, http, CONCURRENT_CHAIN, CONCURRENT_RUNS, 120)
        out.update(cost.cpu_results(f"embedded.{CONCURRENT}", m))
    return out


def run(repeats: int = 3) -> dict[str, Any]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    best: dict[str, Any] = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="servo-bench-cpu-") as tmp:
            for key, value in once(Path(tmp)).items():
                best[key] = min(value, best.get(key, value))
        print(best, flush=True)
    return best


if __name__ == "__main__":
    figures = run(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
    for key, value in sorted(figures.items()):
        print(f"{key}  {value}")
