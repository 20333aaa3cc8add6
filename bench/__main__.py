"""Run every benchmark, print a table and merge the results into bench-results.json by key."""

from __future__ import annotations

import json
from pathlib import Path

from bench import compaction


def main() -> None:
    results = compaction.run()
    path = Path("bench-results.json")
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update(results)
    path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    width = max(len(k) for k in results)
    for key, value in sorted(results.items()):
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
