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
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servo.services.ledger import append_events
from servo.services.sensor_projection import refresh_sensors
from servo.store.counting import CountingStore

from tests.services.test_sensor_archive_files import QUARTER_MS, _history, _seed_single_files
from tests.services.test_sensor_retention import Ledger, _poll
from tests.support.context import FakeClock, make_context

INTERVAL_MS = 30_000


def main(days: int) -> None:
    ledger = Ledger()
    state, last, version, at = _history(ledger, days)
    root = Path(tempfile.mkdtemp(prefix="sensor_publish_"))
    _seed_single_files(root, state, last[-1].event_id)
    clock = FakeClock(at)
    ctx = make_context(root, clock=clock, compact=False)[0]
    counting = CountingStore(ctx.store)
    ctx = replace(ctx, store=counting)
    rows = {k: len(v) for k, v in (("archived", state.archived), ("events", state.events))}
    for n in range(4):
        batch = []
        while at < clock.now_ms + QUARTER_MS:
            batch += _poll(ledger, version, at, triggered=version % 10 == 0)
            version, at = version + 1, at + INTERVAL_MS
        clock.now_ms = at
        names = append_events(ctx, "t", "w", batch)
        counting.reset()
        start = time.process_time()
        refresh_sensors(ctx, "t", "w", names)
        cpu = time.process_time() - start
        kind = "converting" if n == 0 else "warm"
        written = counting.snapshot().bytes_written
        print(f"days={days} publish={kind} cpu_s={cpu:.2f} bytes_written={written} {rows}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
