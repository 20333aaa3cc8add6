"""CPU of one sensor projection publish after N days of a 30 s poll sensor (issue 19): the fold of the
stored tables, the new poll's events, the retention cut and the Parquet encoding of every table (the
store's writes left out). Run from the repository root:

    PYTHONPATH=shared python scripts/sensor_publish_cpu.py [days]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servo.core.sensor_rows import SensorTables
from servo.projections.codec import encode_table
from servo.services.sensor_projection import PROJECTION

from tests.services.test_sensor_retention import DAY, POLL, T0, Ledger, _define, _poll

INTERVAL_MS = 30_000


def main(days: int) -> None:
    ledger = Ledger()
    events, version, at = [_define(ledger, POLL)], 0, T0 + INTERVAL_MS
    state = SensorTables()
    for day in range(1, days + 1):  # refreshed daily, as a live projection is (at least)
        batch = []
        while at < T0 + day * DAY:
            batch += _poll(ledger, version, at, triggered=version % 10 == 0)
            version, at = version + 1, at + INTERVAL_MS
        state = PROJECTION.fold(state, [*events, *batch] if day == 1 else batch, T0 + day * DAY)
    rows = PROJECTION.to_rows(state)
    counts = {t.name: len(rows[t.name]) for t in PROJECTION.tables}
    for _ in range(3):  # one publish: read the tables' rows back, fold a poll, cut, encode every table
        start = time.process_time()
        loaded = PROJECTION.from_rows(rows)
        new = PROJECTION.fold(loaded, _poll(ledger, version, at, triggered=False), at + 2_000)
        out = PROJECTION.to_rows(new)
        size = sum(len(encode_table(t, out[t.name])) for t in PROJECTION.tables)
        cpu = time.process_time() - start
        rows, version, at = out, version + 1, at + INTERVAL_MS
        print(f"days={days} publish_cpu_s={cpu:.2f} bytes={size} rows={counts}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
