"""The 1,000-task fan-out against Dagster alone (issue 21): Servo's embedded stack, then Dagster's
in-process ``materialize()`` of the same 1,000 assets with a persistent (SQLite) instance and with an
in-memory one, the ratios and the goal, without the rest of ``make bench`` (and the fan-out's GCS
operations and CPU a task, as ``make bench`` counts them).

    PYTHONPATH=shared:. python -m bench.fanout_rows

Prints JSON. Dagster's venv is made (or reused) first, by ``scripts/bench_dagster_env.sh``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import requests

from bench import _stacks, cost, dagster_cmp, e2e, goals, local_stack
from bench._graphs import write_servo_project
from bench.local_stack import FANOUT, FANOUT_CHILDREN, FANOUT_TIMEOUT_S


def main() -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    dagster = dagster_cmp.ensure_env()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="servo-fanout-rows-") as tmp:
        root = Path(tmp)
        project = write_servo_project(root / "project", (), (FANOUT_CHILDREN,))
        with _stacks.embedded(project, root / "embedded") as target:
            http = requests.Session()
            figures, m = e2e.run_fanout(target, http, project, FANOUT_CHILDREN, FANOUT_TIMEOUT_S)
            out.update({**figures, **cost.ops_results(f"embedded.{FANOUT}", m)})
        local_stack._guarded(
            out, f"dagster.{FANOUT}", lambda: local_stack._dagster_fanout(root / "dagster", lambda: dagster)
        )
    out.update(local_stack._ratios(out))
    out.update({k: v for k, v in goals.judge(out).items() if "Dagster materialize()" in k})
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=1, sort_keys=True))
