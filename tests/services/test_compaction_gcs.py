"""Compaction against fake-gcs-server: real generation preconditions, concurrent compactors, crashes."""

from __future__ import annotations

import random
import threading

import pytest
from servo.core.errors import Conflict
from servo.dev.fake_gcs import FakeGcsServer
from servo.services.compaction import CompactionPolicy, compact, load_published_state, rebuild
from servo.store import ScopedStore
from servo.store.gcs import gcs_store_from_env

from tests.core.test_fold import TENANT, WS, History
from tests.services.compaction_support import NOW, RUNS, Crash, CrashingStore, clean_fold, view, write
from tests.support.fake_gcs import fake_gcs, fresh_bucket

__all__ = ["fake_gcs"]
pytestmark = pytest.mark.emulator


def _history() -> list:  # type: ignore[type-arg]
    out = []
    for i, run_id in enumerate(RUNS):
        h = History(run=run_id, now=1_700_000_000_000 + 7 * i)
        h.trigger()
        h.plan({"a.x": [], "a.y": ["a.x"], "a.z": ["a.y"]})
        h.run_task("a.x")
        h.run_task("a.y")
        out += h.events
    return out


def test_basic_publish_on_gcs(fake_gcs: FakeGcsServer) -> None:
    store = ScopedStore(gcs_store_from_env(fresh_bucket(fake_gcs), fake_gcs.endpoint), TENANT, WS)
    events = _history()
    write(store, events)
    result = compact(store, tenant_id=TENANT, workspace_id=WS, now_ms=NOW)
    assert result.published and result.events_applied == len(events)
    assert view(load_published_state(store, tenant_id=TENANT, workspace_id=WS)) == view(clean_fold(events))


def test_four_concurrent_compactors_with_crashes_converge(fake_gcs: FakeGcsServer) -> None:
    store = ScopedStore(gcs_store_from_env(fresh_bucket(fake_gcs), fake_gcs.endpoint), TENANT, WS)
    events = _history()
    rng = random.Random(7)
    order = events[:]
    rng.shuffle(order)  # late, older-ULID events included
    batches = [order[i : i + 6] for i in range(0, len(order), 6)]
    errors: list[BaseException] = []
    crashes = [0]

    def compactor(seed: int) -> None:
        local = random.Random(seed)
        try:
            for batch in batches:
                names = write(store, batch)  # every writer races to append the same objects
                for _ in range(2):  # a redelivered finalize event
                    crash_at = local.choice([None, 1, 2, 3, 4])
                    try:
                        compact(
                            CrashingStore(store, crash_at),
                            tenant_id=TENANT,
                            workspace_id=WS,
                            hint=names,
                            now_ms=NOW,
                            policy=CompactionPolicy(lookback_ms=0),
                        )
                    except Crash:
                        crashes[0] += 1
                    except Conflict:
                        pass  # lost the race many times: the next delivery retries
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=compactor, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert crashes[0] > 0
    # Crashed deliveries are redelivered: hint every object once more, then everything must be in.
    compact(
        store,
        tenant_id=TENANT,
        workspace_id=WS,
        hint=write(store, events),
        now_ms=NOW,
        policy=CompactionPolicy(lookback_ms=0),
    )
    live = load_published_state(store, tenant_id=TENANT, workspace_id=WS)
    assert view(live) == view(clean_fold(events))
    assert sum(len(p.events) for p in live.runs.values()) == len(events)
    rebuilt, malformed = rebuild(store, tenant_id=TENANT, workspace_id=WS)
    assert malformed == [] and view(rebuilt) == view(live)
