"""The emulator stack's rows of the bench alone (issue 21): timed chains, then counted operations.

``python -m bench.emulator_rows [timed|counted|all]`` from the repo root prints JSON: the 3- and
20-chain on the emulator stack with its default one-publish-a-second rule (a warm-up run, then two
timed runs each, with the per-task overhead), and on the counted stack (fake-gcs-server behind the
counting proxy) the lone chains, the 150-task fan-out and five 20-chains at once. It is the same code
as ``make bench``'s emulator sections, without the rest (Dagster, embedded, load), so a change to the
GCP path's hops can be measured in a few minutes.
"""

from __future__ import annotations

import json
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
    CONCURRENT_CHAIN,
    CONCURRENT_RUNS,
    EMULATOR_FANOUT_CHILDREN,
    FANOUT_TIMEOUT_S,
)


def timed(project: Path, data: Path) -> dict[str, Any]:
    with _stacks.emulators(project, data) as target:
        chains, _, _ = e2e.run_chains(target, requests.Session(), project, CHAINS, 2, warmup=True)
    return chains


def counted(project: Path, data: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with _stacks.emulators(project, data, "emulators_counted", count_ops=True) as target:
        _, measured, _ = e2e.run_chains(target, requests.Session(), project, CHAINS, 2, warmup=False)
        for n, m in measured.items():
            out.update(cost.ops_results(f"emulators.chain{n}", m))
        figures, m = e2e.run_fanout(
            target, requests.Session(), project, EMULATOR_FANOUT_CHILDREN, FANOUT_TIMEOUT_S
        )
        out.update(figures)
        out.update(cost.ops_results(f"emulators.fanout{EMULATOR_FANOUT_CHILDREN + 1}", m))
        figures, m = e2e.run_concurrent_chains(
            target, requests.Session(), CONCURRENT_CHAIN, CONCURRENT_RUNS, FANOUT_TIMEOUT_S
        )
        out.update(figures)
        out.update(cost.ops_results(f"emulators.chain{CONCURRENT_CHAIN}x{CONCURRENT_RUNS}", m))
    return out


def main(what: str = "all") -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="servo-emulator-rows-") as tmp:
        root = Path(tmp)
        project = write_servo_project(root / "project", CHAINS, (EMULATOR_FANOUT_CHILDREN,))
        if what in ("timed", "all"):
            out.update(timed(project, root / "timed"))
        if what in ("counted", "all"):
            out.update(counted(project, root / "counted"))
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:2]), indent=1, sort_keys=True))
