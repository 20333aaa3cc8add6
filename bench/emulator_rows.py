"""The emulator stack's rows of the bench alone (issue 21): timed chains, then counted operations.

``python -m bench.emulator_rows [timed|counted|all]`` from the repo root prints JSON: the 3- and
20-chain on the emulator stack with its default one-publish-a-second rule (a warm-up run, then two
timed runs each, with the per-task overhead), and on the counted stack (fake-gcs-server behind the
counting proxy) the lone chains, the 150-task fan-out, five 20-chains at once and a sweep tick
(``local_stack._emulator_ops``, the same section ``make bench`` runs). Without the rest (Dagster,
embedded, load), a change to the GCP path's hops is measured in a few minutes.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

from bench import _stacks, e2e, local_stack
from bench._graphs import write_servo_project
from bench.local_stack import CHAINS, EMULATOR_FANOUT_CHILDREN


def timed(project: Path, data: Path) -> dict[str, Any]:
    with _stacks.emulators(project, data) as target:
        chains, _, _ = e2e.run_chains(target, requests.Session(), project, CHAINS, 2, warmup=True)
    return chains


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
            # make bench's own counted section: lone chains, the fan-out, five chains, a sweep tick
            out.update(local_stack._emulator_ops(project, root / "counted"))
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:2]), indent=1, sort_keys=True))
