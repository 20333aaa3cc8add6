"""TriggerRun latency and compaction lag under a steady, open-loop load (bounded in count and time).

Triggers go out on a fixed schedule (``rate`` per second for ``duration_s``) from a small thread pool,
so a slow answer does not slow the schedule down. Each run is one no-op task, so the worker's callbacks
load the control plane too. After a trigger is answered, GetRun is polled until the run is visible.

Compaction lag = ledger write of RunTriggered → a GetRun that returns the run. In embedded mode the
write time is taken at the store port (exact); in emulator mode the store is in another process, so
the lag is bracketed: trigger answered → visible (lower bound) and trigger sent → visible (upper).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench import _api
from bench._stacks import Target
from bench._stats import summary

POLL_S = 0.005
VISIBLE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Sample:
    run_id: str
    sent: float
    answered: float
    visible: float | None


def _one(target: Target, ws: str, root: str, local: threading.local) -> Sample:
    http = getattr(local, "http", None)
    if http is None:
        http = local.http = requests.Session()
    sent = time.perf_counter()
    run_id = _api.trigger(http, target.api_url, ws, root, downstream=False)
    answered = time.perf_counter()
    deadline = answered + VISIBLE_TIMEOUT_S
    while time.perf_counter() < deadline:
        if _api.get_run(http, target.api_url, ws, run_id) is not None:
            return Sample(run_id, sent, answered, time.perf_counter())
        time.sleep(POLL_S)
    return Sample(run_id, sent, answered, None)


def idle_triggers(target: Target, project: Path, n: int = 20, ws: str = "idle") -> dict[str, Any]:
    """TriggerRun latency with nothing else going on: ``n`` triggers one after another."""
    http = requests.Session()
    _api.deploy(http, target.api_url, ws, project, "chain3")
    root = "chain3.a00"
    _api.trigger(http, target.api_url, ws, root, downstream=False)  # warm the path once, not measured
    latencies = []
    for _ in range(n):
        sent = time.perf_counter()
        run_id = _api.trigger(http, target.api_url, ws, root, downstream=False)
        latencies.append(time.perf_counter() - sent)
        # Idle means idle: the run's one task finishes before the next trigger.
        target.timeline.wait_completed(run_id, 1, 30)
        target.wait_idle(30)
    return summary(f"{target.mode}.idle.trigger", latencies, (50, 99))


def steady_load(
    target: Target,
    project: Path,
    *,
    rate: float,
    duration_s: float,
    ws: str = "load",
    settle: bool = True,
) -> dict[str, Any]:
    """``rate`` triggers/s for ``duration_s`` against ``target``; returns the latency figures.

    ``settle``: wait for the load's tasks to finish before returning, for a stack that goes on to
    measure something else (False when the stack is torn down next).
    """
    http = requests.Session()
    _api.deploy(http, target.api_url, ws, project, "chain3")
    root = "chain3.a00"
    _api.trigger(http, target.api_url, ws, root, downstream=False)  # warm the path once, not measured
    count = int(rate * duration_s)
    local = threading.local()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="bench-load") as pool:
        futures = []
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(_one, target, ws, root, local))
        sent_for = time.perf_counter() - start
        samples = [f.result() for f in futures]
    prefix = f"{target.mode}.load"
    out: dict[str, Any] = {
        f"{prefix}.rate_per_s": rate,
        f"{prefix}.duration_s": duration_s,
        f"{prefix}.sent_per_s": round(count / sent_for, 1),
        f"{prefix}.not_visible_in_30s": sum(1 for s in samples if s.visible is None),
    }
    out.update(summary(f"{prefix}.trigger", [s.answered - s.sent for s in samples], (50, 99)))
    seen = [s for s in samples if s.visible is not None]
    written = target.tally.run_triggered_at if target.tally is not None else {}
    if written:
        lags = [s.visible - written[s.run_id] for s in seen if s.visible and s.run_id in written]
        out.update(summary(f"{prefix}.compaction_lag", lags, (50, 99)))
    else:
        out.update(
            summary(
                f"{prefix}.lag_after_answer", [s.visible - s.answered for s in seen if s.visible], (50, 99)
            )
        )
        out.update(
            summary(f"{prefix}.lag_after_send", [s.visible - s.sent for s in seen if s.visible], (50, 99))
        )
    if not settle:
        return out
    # Let the load's tasks finish before the next section measures anything.
    for s in samples:
        target.timeline.wait_completed(s.run_id, 1, max(0.1, start + duration_s + 60 - time.perf_counter()))
    target.wait_idle(60)
    return out
