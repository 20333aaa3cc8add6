"""Run inside Dagster's venv, not Servo's: ``dagster.materialize()`` of every asset of one generated
module, in this process, and print one JSON line of timings.

    python _dagster_inprocess.py <module.py> persistent|memory

``persistent``: ``DagsterInstance.get()``, the instance of ``DAGSTER_HOME`` (its default SQLite storage,
as a user of ``dagster dev`` has). ``memory``: ``instance=None``, so ``materialize`` makes an ephemeral
in-memory instance itself. Importing Dagster, defining the assets and getting the instance are timed
apart from ``materialize``, which is the figure compared with Servo.

It imports nothing of Servo or of the bench (Dagster's dependencies never meet Servo's), so it is run
by path.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time

MODES = ("persistent", "memory")


def main(module_path: str, mode: str) -> dict[str, object]:
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {MODES}, not {mode!r}")
    start = time.perf_counter()
    import dagster

    imported = time.perf_counter()
    spec = importlib.util.spec_from_file_location("bench_dagster_graph", module_path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {module_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assets = [v for v in vars(module).values() if isinstance(v, dagster.AssetsDefinition)]
    defined = time.perf_counter()
    instance = dagster.DagsterInstance.get() if mode == "persistent" else None
    ready = time.perf_counter()
    result = dagster.materialize(assets, instance=instance)
    done = time.perf_counter()
    return {
        "mode": mode,
        "assets": len(assets),
        "materialized": len(result.get_asset_materialization_events()),
        "success": bool(result.success),
        "import_s": round(imported - start, 3),
        "define_s": round(defined - imported, 3),
        "instance_s": round(ready - defined, 3),
        "materialize_s": round(done - ready, 3),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2]), sort_keys=True), flush=True)
