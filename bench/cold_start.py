"""Cold start of each Cloud Function (issue 21): how long ``import main`` takes in a fresh interpreter,
as a new function instance pays it before its first request, and whether that import loads pyarrow.

Each function is imported in its own interpreter, with only ``shared/`` and its own folder on the path
(as the deployed source has them), three times; the least time is kept, since on a shared machine other
work can only add to it.

    PYTHONPATH=shared:. python -m bench.cold_start
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"
SHARED = FUNCTIONS.parent / "shared"
REPEATS = 3
# What a function's import must not pull in unless the function needs it at every request.
WATCHED = ("pyarrow", "google.cloud.storage", "google.cloud.tasks_v2")

_PROBE = """
import json, sys, time
start = time.perf_counter()
import main
took = time.perf_counter() - start
print(json.dumps({"seconds": took, "modules": [m for m in sys.argv[1:] if m in sys.modules]}))
"""


@dataclass(frozen=True, slots=True)
class ColdImport:
    seconds: float
    modules: frozenset[str]  # the watched modules the import loaded


def function_names() -> list[str]:
    return sorted(p.parent.name for p in FUNCTIONS.glob("*/main.py"))


def cold_import(name: str) -> ColdImport:
    """Import ``functions/<name>/main.py`` in a fresh interpreter."""
    folder = FUNCTIONS / name
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHARED), str(folder)])}
    env.pop("PYTHONSTARTUP", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *WATCHED],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing functions/{name}/main.py failed: {done.stderr[-500:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return ColdImport(found["seconds"], frozenset(found["modules"]))


def run(repeats: int = REPEATS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in function_names():
        tries = [cold_import(name) for _ in range(repeats)]
        out[f"cold_start.{name}.import_ms"] = round(min(t.seconds for t in tries) * 1000, 1)
        out[f"cold_start.{name}.imports_pyarrow"] = "pyarrow" in tries[0].modules
    return out


if __name__ == "__main__":
    for key, value in sorted(run().items()):
        print(f"{key}  {value}")
