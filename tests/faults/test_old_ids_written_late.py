"""Issue 15 item 12: two faults at once must not lose an event.

The trigger crashes after reserving its runKey and before writing its events; minutes later the
client's retry repairs the run by writing them with the ids the reservation promised, ids older than
the watermark minus the sweep's look-back; and the finalize events of those writes are lost. Neither
the compactor's listing nor the sweep's look-back reaches such an object, yet it must be folded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servo.core import controller as ctl
from servo.services.compaction import load_published_state, rebuild
from servo.services.manifests import deploy_manifest
from servo.services.timers import sweep_workspace
from servo.services.trigger import trigger_run
from servo.store import ObjectStore

from tests.functions.test_deploy_function import asset, manifest
from tests.services.compaction_support import CrashingStore, view
from tests.support.context import make_context

TENANT, WS = "default", "late"
MINUTE = 60_000


class Crash(Exception):
    """The trigger's process dies."""


class DiesBefore(CrashingStore):
    """Every write under ``prefix`` fails: the process died before it."""

    def __init__(self, inner: ObjectStore, prefix: str) -> None:
        super().__init__(inner, None)
        self.prefix = prefix

    def create(self, name: str, data: bytes, **kw: Any) -> int:
        if f"/{self.prefix}" in f"/{name}":
            raise Crash(name)
        return self.inner.create(name, data, **kw)


def _ledger_ids(store: ObjectStore) -> set[str]:
    prefix = "ledger/orchestration/"
    return {m.name.removeprefix(prefix).removesuffix(".json") for m in store.list(prefix)}


def test_events_written_late_with_old_ids_and_their_finalize_lost_are_still_folded(
    tmp_path: Path, faults_injected: Callable[[int, str], None]
) -> None:
    # No inline compaction: every finalize event of this world is lost; only the sweep compacts.
    ctx, clock, _ = make_context(tmp_path, compact=False)
    status, _ = deploy_manifest(ctx, TENANT, WS, json.dumps(manifest(asset("ns.a"))).encode(), None)
    assert status == 201
    body = {"selection": ["ns.a"], "runKey": "nightly"}
    with pytest.raises(Crash):
        trigger_run(replace(ctx, store=DiesBefore(ctx.store, "ledger/orchestration/")), TENANT, WS, body)
    # Other work moves the watermark well past the reserved ids.
    clock.advance(5 * MINUTE)
    other, _ = trigger_run(ctx, TENANT, WS, {"selection": ["ns.a"]})
    assert other == 201
    config = ctl.ControllerConfig()
    sweep_workspace(ctx, TENANT, WS, config)
    clock.advance(MINUTE)
    # The retry repairs the run: the reserved (old) ids written now; and it dies before it publishes.
    with pytest.raises(Crash):
        trigger_run(replace(ctx, store=DiesBefore(ctx.store, "state/")), TENANT, WS, body)
    status, answer = trigger_run(ctx, TENANT, WS, body)  # the next retry finds them written
    assert (status, answer["state"]) == (200, "PENDING")
    for _ in range(3):
        clock.advance(MINUTE)
        sweep_workspace(ctx, TENANT, WS, config)
        trigger_run(ctx, TENANT, WS, body)  # a retry of a run still missing hands its objects over
    faults_injected(3, "crash before the ledger; an old-id repair dies before its publish; finalize lost")
    store = ctx.workspace_store(TENANT, WS)
    published = load_published_state(store, tenant_id=TENANT, workspace_id=WS)
    folded = {i for part in published.runs.values() for i in part.events}
    assert _ledger_ids(store) <= folded, f"never folded: {sorted(_ledger_ids(store) - folded)}"
    assert answer["runId"] in published.runs
    rebuilt, malformed = rebuild(store, tenant_id=TENANT, workspace_id=WS)
    assert not malformed and view(rebuilt) == view(published)
