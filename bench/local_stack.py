"""Issue 7 item 1 on the local stacks, in one run: Servo (embedded and emulators) against Dagster on
the same chains, per-task overhead, a 1,000-task fan-out, TriggerRun latency and compaction lag under
load, GCS operations per task, and the cancel latency of `servo dev` (bench/cancel.py).

Each part records an ``….error`` key instead of aborting the others, so a missing piece (no registry
for the Dagster venv, an emulator that will not start) still leaves every other figure measured.
"""

from __future__ import annotations

import logging
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench import _stacks, cancel, cost, dagster_cmp, e2e, load
from bench._graphs import write_servo_project

CHAINS = (3, 20)
REPS = 3
FANOUT_CHILDREN = 999  # one root and 999 children: 1,000 tasks
FANOUT = f"fanout{FANOUT_CHILDREN + 1}"  # the figures' label
# The GCP code path's operations on a batched workload: a smaller fan-out, since the counting proxy and
# the worker share this process (and its GIL) and hold that stack to about five tasks a second.
EMULATOR_FANOUT_CHILDREN = 149
FANOUT_TIMEOUT_S = 420.0
# Runs of the 20-chain in flight together, counted: one run's hops share their publishes with the
# others', as in a workspace with more than one run at a time (a lone chain publishes once a hop).
CONCURRENT_CHAIN, CONCURRENT_RUNS = 20, 5
CONCURRENT = f"chain{CONCURRENT_CHAIN}x{CONCURRENT_RUNS}"  # the figures' label, after the stack's
LOAD_RATE, LOAD_SECONDS = 20.0, 10.0
# The same load on both stacks. (Before compactions of one workspace rode one flight, the emulator stack
# fell minutes behind at 20/s and ran at 5/s.)
EMULATOR_LOAD_RATE = LOAD_RATE
# On GCS the head pointer is published at most once a second (design §5.3); the second emulator stack
# lifts that limit so the table shows how much of the per-task overhead it accounts for.
UNTHROTTLED = {"SERVO_MIN_PUBLISH_INTERVAL_MS": "0"}

logger = logging.getLogger("bench")


def _guarded(results: dict[str, Any], key: str, part: Callable[[], dict[str, Any]]) -> None:
    start = time.perf_counter()
    try:
        results.update(part())
    except Exception as exc:
        logger.error("%s failed:\n%s", key, traceback.format_exc())
        results[f"{key}.error"] = f"{type(exc).__name__}: {exc}"[:500]
    results[f"{key}.section_s"] = round(time.perf_counter() - start, 1)


def _embedded(project: Path, data: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with _stacks.embedded(project, data) as target:
        http = requests.Session()
        chains, counted, _ = e2e.run_chains(target, http, project, CHAINS, REPS)
        out.update(chains)
        for n, m in counted.items():
            out.update(cost.ops_results(f"embedded.chain{n}", m))

        def fanout() -> dict[str, Any]:
            figures, m = e2e.run_fanout(target, http, project, FANOUT_CHILDREN, FANOUT_TIMEOUT_S)
            return {**figures, **cost.ops_results(f"embedded.{FANOUT}", m)}

        _guarded(out, f"embedded.{FANOUT}", fanout)
        _guarded(out, f"embedded.{CONCURRENT}", lambda: _concurrent(target, http))
        _guarded(out, "embedded.idle", lambda: load.idle_triggers(target, project))
        _guarded(
            out,
            "embedded.load",
            lambda: load.steady_load(target, project, rate=LOAD_RATE, duration_s=LOAD_SECONDS),
        )
        _guarded(out, "embedded.sweep", lambda: _sweep_ops(target, "ops.sweep_tick"))
    return out


def _concurrent(target: _stacks.Target, http: requests.Session) -> dict[str, Any]:
    figures, m = e2e.run_concurrent_chains(target, http, CONCURRENT_CHAIN, CONCURRENT_RUNS, 120)
    # The counted emulator stack's operations are the emulators' (as its chains' and fan-out's are).
    return {**figures, **cost.ops_results(f"{target.mode.removesuffix('_counted')}.{CONCURRENT}", m)}


def _sweep_ops(target: _stacks.Target, key: str) -> dict[str, Any]:
    """Operations of one scheduler tick (the timers sweep) over the workspaces this run created:
    a fixed cost per tick (1,440 ticks a day at one a minute), whatever the task count.

    Embedded, the sweep compacts each workspace itself over its two-minute window (local files: CPU,
    not money); on the GCP path it only lists past the watermark of an idle workspace and kicks the
    compactor where there is work, so the emulator stack's tick is the one that prices a deployment.
    """
    assert target.tally is not None
    target.wait_idle(30)
    target.tally.reset()
    headers = {"X-CloudScheduler": "true", "X-CloudScheduler-JobName": "servo-timers-sweep"}
    headers.update(target.internal_headers)
    res = requests.post(f"{target.api_url}/v1/timers/sweep", json={}, headers=headers, timeout=120)
    if res.status_code >= 300:
        raise RuntimeError(f"sweep answered {res.status_code}: {res.text[:300]}")
    target.wait_idle(30)
    ops = target.tally.snapshot()
    writes_lists = sum(v for (_, op), v in ops.items() if op != "read")
    reads = sum(v for (_, op), v in ops.items() if op == "read")
    # cost_per_1000_tasks(x, y) is the price of 1,000 × (x class-A + y class-B) operations.
    per_day = 1440 * cost.cost_per_1000_tasks(writes_lists, reads) / 1000
    out: dict[str, Any] = {
        f"{key}.writes_lists": writes_lists,
        f"{key}.reads": reads,
        f"{key}.usd_per_day_at_1_per_min": round(per_day, 5),
    }
    for (name_prefix, op), count in sorted(ops.items()):
        out[f"{key}.by_prefix.{name_prefix}:{op}"] = count
    return out


def _emulators(project: Path, data: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    start = time.perf_counter()
    with _stacks.emulators(project, data / "default") as target:
        out["emulators.stack_start_s"] = round(time.perf_counter() - start, 1)
        http = requests.Session()
        # One run per chain: at ~1 s a hop the 20-chain alone takes ~20 s here.
        chains, _, _ = e2e.run_chains(target, http, project, CHAINS, 1, warmup=False)
        out.update(chains)
        _guarded(out, "emulators.idle", lambda: load.idle_triggers(target, project, n=10))
        _guarded(
            out,
            "emulators.load",
            # The last use of this stack: its backlog of tasks need not run out before teardown.
            lambda: load.steady_load(
                target, project, rate=EMULATOR_LOAD_RATE, duration_s=LOAD_SECONDS, settle=False
            ),
        )
    with _stacks.emulators(project, data / "unthrottled", "emulators_unthrottled", UNTHROTTLED) as target:
        chains, _, _ = e2e.run_chains(target, requests.Session(), project, CHAINS, 2, warmup=False)
        out.update(chains)
    return out


def _emulator_ops(project: Path, data: Path) -> dict[str, Any]:
    """GCS operations per task on the GCP code path, counted on the wire in a stack of their own."""
    out: dict[str, Any] = {}
    with _stacks.emulators(project, data, "emulators_counted", count_ops=True) as target:
        # The second run of each chain is counted: function instances are warm, as in a busy workspace.
        _, counted, _ = e2e.run_chains(target, requests.Session(), project, CHAINS, 2, warmup=False)
        for n, m in counted.items():
            out.update(cost.ops_results(f"emulators.chain{n}", m))

        def fanout() -> dict[str, Any]:
            http = requests.Session()
            figures, m = e2e.run_fanout(target, http, project, EMULATOR_FANOUT_CHILDREN, FANOUT_TIMEOUT_S)
            return {**figures, **cost.ops_results(f"emulators.fanout{EMULATOR_FANOUT_CHILDREN + 1}", m)}

        _guarded(out, "emulators_counted.fanout", fanout)
        _guarded(out, "emulators_counted.concurrent", lambda: _concurrent(target, requests.Session()))
        _guarded(out, "emulators_counted.sweep", lambda: _sweep_ops(target, "ops.emulators.sweep_tick"))
    return out


def _dagster(work: Path, env: Callable[[], Path]) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    dagster = env()
    out: dict[str, Any] = {"dagster.version": dagster_cmp.version(dagster)}
    for n in CHAINS:
        out[f"dagster.chain{n}.wall_s"] = round(dagster_cmp.materialize(dagster, work, n), 3)
    return out


def _dagster_fanout(work: Path, env: Callable[[], Path]) -> dict[str, Any]:
    """The 1,000-task fan-out through ``dagster.materialize()`` in one process, with a persistent
    instance and with an in-memory one; each row's import, definition and instance setup apart."""
    work.mkdir(parents=True, exist_ok=True)
    dagster = env()
    out: dict[str, Any] = {}
    for mode in dagster_cmp.IN_PROCESS_MODES:
        figures = dagster_cmp.materialize_fanout(dagster, work, FANOUT_CHILDREN, mode)
        for key in ("import_s", "define_s", "instance_s", "materialize_s", "process_s"):
            out[f"dagster.{FANOUT}.{mode}.{key}"] = figures[key]
    return out


def _ratios(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("embedded", "emulators", "emulators_unthrottled"):
        for n in CHAINS:
            servo = results.get(f"{mode}.chain{n}.wall_s")
            dagster = results.get(f"dagster.chain{n}.wall_s")
            if servo and dagster:
                out[f"ratio.dagster_over_{mode}.chain{n}"] = round(dagster / servo, 1)
    servo = results.get(f"embedded.{FANOUT}.succeeded_s")
    for mode in dagster_cmp.IN_PROCESS_MODES:
        dagster = results.get(f"dagster.{FANOUT}.{mode}.materialize_s")
        if servo and dagster:
            out[f"ratio.dagster_{mode}_over_embedded.{FANOUT}"] = round(dagster / servo, 1)
    return out


def run() -> dict[str, Any]:
    """Every local-stack figure of issue 7 item 1, measured in this one run."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="servo-bench-") as tmp:
        root = Path(tmp)
        project = write_servo_project(root / "project", CHAINS, (FANOUT_CHILDREN, EMULATOR_FANOUT_CHILDREN))
        _guarded(results, "dev.cancel", lambda: cancel.run(root / "cancel"))
        _guarded(results, "embedded", lambda: _embedded(project, root / "embedded"))
        _guarded(results, "emulators", lambda: _emulators(project, root / "emulators"))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dagster-venv") as pool:
            # Dagster's venv (about 50 s of pip) is made while the counted stack starts and runs its
            # lone chains, whose counts a busy CPU cannot move (one publish a hop, a second apart);
            # pip is about done when the batched workloads start. It keeps the bench well inside its
            # ten minutes on a slow day.
            env = pool.submit(dagster_cmp.ensure_env)
            _guarded(results, "emulators.ops", lambda: _emulator_ops(project, root / "emulators" / "counted"))
            _guarded(results, "dagster", lambda: _dagster(root / "dagster", env.result))
            _guarded(results, f"dagster.{FANOUT}", lambda: _dagster_fanout(root / "dagster", env.result))
    results.update(_ratios(results))
    results.update(cost.PRICES)
    return results
