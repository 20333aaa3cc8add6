"""End to end on the local stacks: chains of no-op assets and a fan-out, trigger → SUCCEEDED, through
the public API, the dispatcher, the real worker app and its callbacks (in process on the embedded stack,
as ``servo dev`` runs them; over HTTP on the emulator stack).

Per-task orchestration overhead is measured at the worker: from the moment the upstream task's
``completed`` callback got its 2xx answer to the moment the downstream task's envelope arrived.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import requests
from servo.store import OpCounts

from bench import _api, _cpu
from bench._graphs import chain_keys, fanout_keys, fanout_namespace
from bench._instrument import TaskTimes
from bench._stacks import Target
from bench._stats import ms, summary


@dataclass(frozen=True, slots=True)
class RunMeasure:
    run_ids: tuple[str, ...]
    tasks: int  # over all the runs measured together
    wall_s: float  # trigger sent → GetRun answered SUCCEEDED (for the last of the runs)
    all_completed_s: float  # trigger sent → last completed callback accepted
    overheads_s: tuple[float, ...]  # per dependent task
    ops: dict[tuple[str, str], int] = field(default_factory=dict)
    port: OpCounts | None = None  # servo.store.CountingStore's own totals for the same window
    ledger_types: dict[str, int] = field(default_factory=dict)  # ledger objects written, by event type
    # CPU of the stack's processes over the same window as ``ops`` (counted runs only).
    cpu: _cpu.CpuSample | None = None
    cpu_tasks: int = 0  # the tasks ``cpu`` covers, where that is not ``tasks`` (several runs' windows)


def _edge_overheads(times: dict[str, TaskTimes], edges: Sequence[tuple[str, str]]) -> list[float]:
    out = []
    for up, down in edges:
        accepted = times[up].completed_accepted
        if accepted is not None and down in times:
            out.append(times[down].received - accepted)
    return out


def measure_run(
    target: Target,
    http: requests.Session,
    ws: str,
    keys: Sequence[str],
    edges: Sequence[tuple[str, str]],
    *,
    count_ops: bool,
    timeout: float,
    copies: int = 1,
    count_cpu: bool = False,
) -> RunMeasure:
    """Trigger ``keys[0]`` with its downstream ``copies`` times at once and wait for all SUCCEEDED.

    With ``count_ops`` the store counters are reset before the first trigger and read after the last
    completion and the control plane going idle, before the first GetRun (whose reads are the
    client's, not the tasks'). The stack's CPU is sampled over that same window, also with
    ``count_cpu`` alone.
    """
    count_cpu = (count_ops or count_cpu) and target.tally is not None
    if count_cpu:
        target.wait_idle(30)
    if count_ops and target.tally is not None:
        target.tally.reset()
        if target.counting is not None:
            target.counting.reset()
    cpu_start = _cpu.sample()
    start = time.perf_counter()
    run_ids = [_api.trigger(http, target.api_url, ws, keys[0], downstream=True) for _ in range(copies)]
    for run_id in run_ids:
        if not target.timeline.wait_completed(
            run_id, len(keys), max(1.0, start + timeout - time.perf_counter())
        ):
            seen = len(target.timeline.of_run(run_id))
            raise _api.BenchError(
                f"{ws}: only {seen}/{len(keys)} tasks reached the worker within {timeout:.0f}s"
            )
    times = [target.timeline.of_run(run_id) for run_id in run_ids]
    last = max(t.completed_accepted or 0.0 for run in times for t in run.values())
    ops: dict[tuple[str, str], int] = {}
    port = None
    ledger_types: dict[str, int] = {}
    cpu = None
    if count_cpu:
        target.wait_idle(60)
        cpu = _cpu.window(cpu_start)
    if count_ops and target.tally is not None:
        ops = target.tally.snapshot()
        port = target.counting.snapshot() if target.counting is not None else None
        ledger_types = target.tally.ledger_snapshot()
    seen_at = start
    for run_id in run_ids:
        run, seen_at = _api.wait_state(http, target.api_url, ws, run_id, timeout)
        if run["state"] != "SUCCEEDED":
            raise _api.BenchError(f"{ws}: run {run_id} ended {run['state']}")
    overheads = [o for run in times for o in _edge_overheads(run, edges)]
    return RunMeasure(
        tuple(run_ids),
        copies * len(keys),
        seen_at - start,
        last - start,
        tuple(overheads),
        ops,
        port,
        ledger_types,
        cpu,
    )


def chain_edges(n: int) -> list[tuple[str, str]]:
    keys = chain_keys(n)
    return list(itertools.pairwise(keys))


def run_chains(
    target: Target,
    http: requests.Session,
    project: Any,
    chains: Sequence[int],
    reps: int,
    *,
    warmup: bool = True,
) -> tuple[dict[str, Any], dict[int, RunMeasure], list[float]]:
    """Deploy each chain, optionally run it once to warm up, then ``reps`` timed runs; the last counts ops."""
    results: dict[str, Any] = {}
    counted: dict[int, RunMeasure] = {}
    overheads: list[float] = []
    for n in chains:
        ws = f"chain{n}"
        _api.deploy(http, target.api_url, ws, project, ws)
        keys, edges = chain_keys(n), chain_edges(n)
        if warmup:
            first = measure_run(target, http, ws, keys, edges, count_ops=False, timeout=120)
            results[f"{target.mode}.chain{n}.first_run_s"] = round(first.wall_s, 3)
        walls, cpus = [], []
        for rep in range(reps):
            m = measure_run(
                target, http, ws, keys, edges, count_ops=rep == reps - 1, timeout=120, count_cpu=True
            )
            walls.append(m.wall_s)
            overheads.extend(m.overheads_s)
            if m.cpu is not None:
                cpus.append(m.cpu)
            if m.ops:
                # A short chain's CPU is a few tens of milliseconds a run: one stray pause of the
                # process moves one run's figure by a fifth, so the CPU is every timed run's.
                counted[n] = replace(m, cpu=_cpu.total(cpus), cpu_tasks=n * len(cpus))
        results[f"{target.mode}.chain{n}.wall_s"] = round(statistics.median(walls), 3)
        results[f"{target.mode}.chain{n}.wall_min_s"] = round(min(walls), 3)
        results[f"{target.mode}.chain{n}.runs"] = reps
    results.update(summary(f"{target.mode}.task_overhead", overheads, (50, 95)))
    return results, counted, overheads


def run_fanout(
    target: Target, http: requests.Session, project: Any, children: int, timeout: float
) -> tuple[dict[str, Any], RunMeasure]:
    """One root and ``children`` dependents of it: time to all SUCCEEDED (ops counted)."""
    ws = fanout_namespace(children)
    _api.deploy(http, target.api_url, ws, project, ws)
    keys = fanout_keys(children)
    edges = [(keys[0], k) for k in keys[1:]]
    m = measure_run(target, http, ws, keys, edges, count_ops=True, timeout=timeout)
    prefix = f"{target.mode}.fanout{len(keys)}"
    out: dict[str, Any] = {
        f"{prefix}.tasks": len(keys),
        f"{prefix}.succeeded_s": round(m.wall_s, 3),
        f"{prefix}.all_completed_s": round(m.all_completed_s, 3),
        f"{prefix}.tasks_per_s": round(len(keys) / m.wall_s, 1),
    }
    if m.overheads_s:
        out[f"{prefix}.root_done_to_last_child_received_ms"] = ms(max(m.overheads_s))
    return out, m


def run_concurrent_chains(
    target: Target, http: requests.Session, n: int, copies: int, timeout: float
) -> tuple[dict[str, Any], RunMeasure]:
    """``copies`` runs of the (already deployed) ``n``-chain triggered at once (ops counted).

    A lone chain needs a publish of its own for every hop; runs in flight together share them, which
    is what a workspace with more than one run at a time pays per task.
    """
    ws = f"chain{n}"
    m = measure_run(
        target, http, ws, chain_keys(n), chain_edges(n), count_ops=True, timeout=timeout, copies=copies
    )
    prefix = f"{target.mode}.chain{n}x{copies}"
    return {f"{prefix}.tasks": m.tasks, f"{prefix}.succeeded_s": round(m.wall_s, 3)}, m
