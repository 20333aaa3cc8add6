"""Issue 20 item 6: a backfill of 365 daily partitions of a 3-asset chain on the embedded stack.

One POST /backfills over 2023-01-01..2023-12-31 of ``bf.a -> bf.b -> bf.c``: 365 runs of three tasks.
Measured from the create request to GET /backfills/{id} answering SUCCEEDED: wall time, tasks per second
and the store's operations per task (the embedded stack's own counter, as for the chains and the fan-out).
No sweep loop runs: every chunk after the first is planned on the after-commit path.

Run alone: ``python -m bench.backfill`` (prints the figures and merges them into bench-results.json).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench import _api, _stacks, cost
from bench.e2e import RunMeasure

NAMESPACE = "bf"
START, END, DAYS = "2023-01-01", "2023-12-31", 365
ASSETS = 3
CHUNK_SIZE, MAX_CONCURRENT = 10, 50
TIMEOUT_S = 420.0
LABEL = f"backfill{DAYS}x{ASSETS}"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})

MODULE = """from servo.sdk import DailyPartitions, asset

DAILY = DailyPartitions(start="2023-01-01")


@asset(namespace="bf", partitions=DAILY)
def a(context):
    return None


@asset(namespace="bf", deps=["bf.a"], partitions=DAILY)
def b(context):
    return None


@asset(namespace="bf", deps=["bf.b"], partitions=DAILY)
def c(context):
    return None
"""


def write_project(root: Path) -> Path:
    (root / "assets").mkdir(parents=True, exist_ok=True)
    (root / "assets" / "bench_backfill.py").write_text(MODULE)
    return root


def measure(target: _stacks.Target, http: requests.Session, project: Path) -> dict[str, Any]:
    base = f"{target.api_url}/v1/workspaces/{NAMESPACE}/backfills"
    _api.deploy(http, target.api_url, NAMESPACE, project, NAMESPACE)
    assert target.tally is not None and target.counting is not None
    target.wait_idle(30)
    target.tally.reset()
    target.counting.reset()
    tasks = DAYS * ASSETS
    body = {
        "assets": [f"{NAMESPACE}.{name}" for name in ("a", "b", "c")],
        "partitions": {"range": {"start": START, "end": END}},
        "chunkSize": CHUNK_SIZE,
        "maxConcurrentRuns": MAX_CONCURRENT,
    }
    start = time.perf_counter()
    res = http.post(base, json=body, headers={"Idempotency-Key": LABEL}, timeout=120)
    if res.status_code != 201:
        raise _api.BenchError(f"create answered {res.status_code}: {res.text[:300]}")
    backfill_id = res.json()["backfillId"]
    # Completions as the worker saw them, not by polling the API: a GET's reads are the client's.
    timeline = target.timeline
    deadline = start + TIMEOUT_S
    while sum(1 for t in list(timeline.tasks.values()) if t.completed_accepted) < tasks:
        if time.perf_counter() > deadline:
            done = sum(1 for t in list(timeline.tasks.values()) if t.completed_accepted)
            raise _api.BenchError(f"only {done}/{tasks} tasks completed in {TIMEOUT_S:.0f} s")
        time.sleep(0.05)
    last = max(t.completed_accepted or 0.0 for t in list(timeline.tasks.values()))
    target.wait_idle(60)
    ops = target.tally.snapshot()
    port = target.counting.snapshot()
    ledger = target.tally.ledger_snapshot()
    while (shown := http.get(f"{base}/{backfill_id}", timeout=60).json())["state"] not in TERMINAL:
        if time.perf_counter() > deadline:
            raise _api.BenchError(f"backfill not done in {TIMEOUT_S:.0f} s: {shown['partitionCounts']}")
        time.sleep(0.2)
    wall = time.perf_counter() - start
    if shown["state"] != "SUCCEEDED":
        raise _api.BenchError(f"backfill ended {shown['state']}: {shown['partitionCounts']}")
    m = RunMeasure((), tasks, wall, last - start, (), ops, port, ledger)
    prefix = f"{target.mode}.{LABEL}"
    return {
        f"{prefix}.tasks": tasks,
        f"{prefix}.runs": DAYS,
        f"{prefix}.wall_s": round(wall, 2),
        f"{prefix}.tasks_per_s": round(tasks / wall, 1),
        f"{prefix}.all_completed_s": round(last - start, 2),
        **cost.ops_results(f"{target.mode}.{LABEL}", m),
    }


def run(root: Path) -> dict[str, Any]:
    project = write_project(root / "project")
    with _stacks.embedded(project, root / "data") as target:
        return measure(target, requests.Session(), project)


def run_guarded() -> dict[str, Any]:
    """The row for ``make bench``: its figures, or a ``backfill.error`` key and the others untouched."""
    from bench.local_stack import _guarded

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="servo-bench-backfill-") as tmp:
        _guarded(results, "backfill", lambda: run(Path(tmp)))
    return results


def main() -> None:
    from bench.__main__ import RESULTS, merge, print_table

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    results = run_guarded()
    merge(results)
    print_table(results)
    print(f"(merged into {RESULTS})")


if __name__ == "__main__":
    main()
