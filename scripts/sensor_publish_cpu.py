"""CPU and bytes of one sensor projection publish after N days of a 30 s poll sensor (issue 19): the
projection as published with N days of history (one file per table, as before delta files), then
quarter-hourly publishes through ``refresh_sensors`` on a local store, each folding 30 polls from the
ledger, cutting, and writing its files and head (the first one also converts the single files and
decodes them; the next ones read them from the instance's cache, as a warm instance does). Run from the
repository root:

    PYTHONPATH=shared python scripts/sensor_publish_cpu.py [days]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.services.test_sensor_archive_files import quarter_publishes


def main(days: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="sensor_publish_"))
    for n, published in enumerate(quarter_publishes(root, days, 4)):
        kind = "converting" if n == 0 else "warm"
        parts, cpu = len(published.live.archived), published.cpu_s
        print(f"days={days} publish={kind} cpu_s={cpu:.2f} bytes_written={published.written} {parts=}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
