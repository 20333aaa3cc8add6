"""Run every benchmark, print a table and merge the results into bench-results.json by key.

Sections run in order (compaction and the functions' cold imports, then the local stacks against
Dagster); each section's figures are merged into the file as soon as it ends, so an interrupted run
keeps what it measured.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from bench import backfill, catalog, cold_start, compaction, goals, local_stack

RESULTS = Path("bench-results.json")


# Keys of the local-stack section ("emulators" also covers emulators_unthrottled and _counted): a rerun
# replaces all of them, so a figure (or an error) of an
# earlier run never sits beside this run's as if measured together.
STACK_PREFIXES = (
    "dev.", "embedded.", "emulators", "dagster.", "ratio.", "ops.", "cpu.", "goal.", "bench.", "backfill.",
)  # fmt: skip


def merge(results: dict[str, Any], replace_prefixes: tuple[str, ...] = ()) -> None:
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    merged = (
        {k: v for k, v in merged.items() if not k.startswith(replace_prefixes)}
        if replace_prefixes
        else merged
    )
    merged.update(results)
    RESULTS.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")


def print_table(results: dict[str, Any]) -> None:
    width = max(len(k) for k in results)
    for key, value in sorted(results.items()):
        print(f"{key:<{width}}  {value}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    results = {**compaction.run(), **cold_start.run()}
    results.update(catalog.run())
    merge(results)
    print_table(results)
    stacks = local_stack.run()
    stacks.update(backfill.run_guarded())
    verdicts = goals.judge({**results, **stacks})
    stacks["bench.total_s"] = round(time.perf_counter() - start, 1)
    merge({**stacks, **verdicts}, STACK_PREFIXES)
    print()
    print_table(stacks)
    print()
    print_table(verdicts)


if __name__ == "__main__":
    main()
