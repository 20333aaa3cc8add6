"""Which runs the sweep looks at for run-status items (automation §6.2): every run that turns terminal,
however many end between two sweeps, with a bounded number of reads per sweep.

A run that ended after a pass began was still active when it began, or was triggered after that. So a
pass pages the runs newest first (ListRuns' order) down to ``low``: the oldest run that was active when
the previous pass began, less a margin for the run projection's lag (a run whose RunTriggered folds
late shows up with an older ``triggered_at``). A sweep reads at most ``RUN_SCAN_PAGES`` pages; where the
pass stopped is kept in ``automation/sensors/_run_scan.json`` and the next sweep resumes there, then
starts the next pass from the newest run.

Looking at a run twice is harmless: an item is keyed by its run (a sensor that holds it, or whose
checkpoint is past the run's end, takes it no more). So the scan state is written only after the items
it found are published, and a crash, a lost write race or a concurrent sweep only makes runs looked at
again, never skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import PreconditionFailed
from servo.core.rows import RunRow
from servo.services.read_model import Snapshot
from servo.store import ObjectStore

SCAN_PATH = "automation/sensors/_run_scan.json"
RUN_SCAN_LIMIT = 200  # runs per page
RUN_SCAN_PAGES = 5  # pages per sweep: what is left of a pass waits for the next sweep
LAG_MARGIN_MS = 15 * 60_000


@dataclass(frozen=True, slots=True)
class RunScan:
    low: int  # this pass looks at every run triggered at or after it
    cursor: tuple[int, str] | None  # where this pass resumes; None: the pass is done
    next_low: int  # the next pass's ``low``: the oldest run active when this pass began


@dataclass(frozen=True, slots=True)
class ScanPage:
    runs: list[RunRow]  # ended runs seen, newest first
    scan: RunScan  # the state to keep once the items they gave are published
    generation: int  # of the state read (the write's precondition)


def load_scan(store: ObjectStore) -> tuple[RunScan | None, int]:
    found = store.get(SCAN_PATH)
    if found is None:
        return None, 0
    raw = loads_strict(found.data)
    cursor = raw["cursor"]
    scan = RunScan(raw["low"], None if cursor is None else (cursor[0], cursor[1]), raw["nextLow"])
    return scan, found.generation


def save_scan(store: ObjectStore, page: ScanPage) -> None:
    """Keep where the scan is; a concurrent sweep that wrote first wins (this one's runs are rescanned)."""
    scan = page.scan
    body = {
        "low": scan.low,
        "cursor": None if scan.cursor is None else list(scan.cursor),
        "nextLow": scan.next_low,
    }
    with contextlib.suppress(PreconditionFailed):
        store.put(SCAN_PATH, canonical_bytes(body), if_generation_match=page.generation)


def _oldest_active(snapshot: Snapshot, now_ms: int) -> int:
    triggered = [now_ms]
    for run_id in snapshot.active_run_ids():
        entry = snapshot.index_entry(run_id)
        if entry is not None and entry.run is not None:
            triggered.append(entry.run.triggered_at)
    return min(triggered) - LAG_MARGIN_MS


def scan_ended_runs(
    store: ObjectStore, snapshot: Snapshot, now_ms: int, first_seen: Iterable[int]
) -> ScanPage:
    """The next pages of the scan: ended runs to hand to the run-status sensors, and the state after.

    ``first_seen`` are the watching sensors' first sight: without a state, the first pass goes down to
    the oldest of them and of the runs active now (a run that ended before a sensor existed is none of
    its business).
    """
    scan, generation = load_scan(store)
    if scan is None:
        first = min([*first_seen, now_ms]) - LAG_MARGIN_MS
        scan = RunScan(first, None, min(first, _oldest_active(snapshot, now_ms)))
    if scan.cursor is None:  # a new pass, newest first
        scan = RunScan(scan.next_low, None, _oldest_active(snapshot, now_ms))
    cursor, ended = scan.cursor, []
    for _ in range(RUN_SCAN_PAGES):
        runs, more = snapshot.list_runs(limit=RUN_SCAN_LIMIT, cursor=cursor)
        ended += [r for r in runs if r.triggered_at >= scan.low and r.completed_at is not None]
        if more is None or not runs or runs[-1].triggered_at < scan.low:
            return ScanPage(ended, RunScan(scan.low, None, scan.next_low), generation)
        cursor = more
    return ScanPage(ended, RunScan(scan.low, cursor, scan.next_low), generation)
