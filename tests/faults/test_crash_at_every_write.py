"""A crash before and after each storage write of each function path, then the client's retry.

The scenario is small but passes every path: deploy (the sweep's registration, the manifest, the
Idempotency-Key record, the current pointer), trigger (run_key reservation, creation record,
RunTriggered, PlanCreated), callbacks (the attempt's claim, started, heartbeat, logs, completed),
cancel, the timers function (a retry timer fires) and compaction with its side effects (dispatch
and timer requests and acknowledgements, segments, index, manifest, head pointer). The first write
of a kind in a path crashes before it lands, the second (usually the retry's) right after it
committed. A crash inside a request answers 5xx and the client (worker, Cloud Tasks, Eventarc,
Scheduler) retries; a crash inside the embedded inline compaction is absorbed by the writer and the
sweep catches up. Either way each run must end exactly as in the clean run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from servo.http.runtime import override_context
from servo.services.manifests import load_current_manifest
from servo.services.timers import sweep

from tests.faults.checks import assert_converged
from tests.faults.harness import TENANT, WS, Chaos, RunPlan, Scenario, World
from tests.support.faults import CrashAt, FaultPlan

SCENARIO = Scenario(
    (("ns.a0", (), 1), ("ns.a1", ("ns.a0",), 1), ("ns.a2", ("ns.a0", "ns.a1"), 1)),
    (RunPlan("r-retry", {"ns.a0": ("retry",), "ns.a1": ("ok",)}), RunPlan("r-cancel", {}, cancel_at="ns.a0")),
)

# Every (function path, write) the scenario makes. A new kind of write in the product shows up in
# test_the_census_names_every_write_site, so it cannot go untested here.
PATH_SITES = {
    ("deploy", "deploy:register"),
    ("deploy", "deploy:manifest"),
    ("deploy", "deploy:idempotency"),
    ("deploy", "deploy:pointer"),
    ("trigger", "run-key"),
    ("trigger", "run-creation"),
    ("trigger", "ledger:RunTriggered"),
    ("trigger", "ledger:PlanCreated"),
    ("callback", "attempt-claim"),
    ("callback", "ledger:TaskStarted"),
    ("callback", "ledger:TaskHeartbeat"),
    ("callback", "logs"),
    ("callback", "ledger:TaskFinished"),
    ("cancel", "ledger:RunCancelRequested"),
    ("timers", "ledger:TimerFired"),
}
COMPACTION_SITES = {
    ("compaction", "ledger:DispatchRequested"),
    ("compaction", "ledger:DispatchEnqueued"),
    ("compaction", "ledger:TimerRequested"),
    ("compaction", "ledger:TimerEnqueued"),
    ("compaction", "state:segments"),
    ("compaction", "state:index"),
    ("compaction", "state:pointer"),  # it holds the manifest: no manifest object is written
}
# The completing callback dispatches what it made ready (services/callback_dispatch) where compaction
# is asynchronous; inline, the writer's own publish has dispatched it already and the callback's pass
# finds the request made (effects' recent decisions), so it writes nothing.
CALLBACK_DISPATCH_SITES = {
    ("callback", "ledger:DispatchRequested"),
    ("callback", "ledger:DispatchEnqueued"),
}
# Where the trigger dispatches its run's roots itself (the embedded stack, settings.trigger_dispatch),
# its dispatch writes are the trigger's; the compactor, later, finds them made. A crash there is
# absorbed (the trigger answers 201 and the compactor dispatches); a crash in the creation's own
# writes, which now go out without awaiting their publish, is retried by the client as before.
TRIGGER_DISPATCH_SITES = {
    ("trigger", "ledger:DispatchRequested"),
    ("trigger", "ledger:DispatchEnqueued"),
}
TRIGGER_PATH_SITES = {s for s in PATH_SITES if s[0] == "trigger"}
# Through the compactor function a crash fails the delivery and Eventarc redelivers it; the effect
# writes are the inline path's code, so the publish writes are the ones worth repeating there.
STATE_SITES = {s for s in COMPACTION_SITES if s[1].startswith("state:")}
CASES = [
    pytest.param(mode, site, id=f"{mode}-{site[0]}-{site[1]}")
    for mode, sites in (
        ("inline", PATH_SITES | COMPACTION_SITES),
        ("compactor", STATE_SITES | CALLBACK_DISPATCH_SITES),
        ("trigger-dispatch", TRIGGER_PATH_SITES | TRIGGER_DISPATCH_SITES),
    )
    for site in sorted(sites)
]


def play(tmp_path: Path, chaos: Chaos) -> tuple[World, dict[str, dict[str, Any]]]:
    world = World(tmp_path, SCENARIO, chaos)
    with override_context(world.ctx):
        return world, world.run()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    _, final = play(tmp_path_factory.mktemp("clean"), Chaos())
    return final


def test_the_clean_run_ends_as_scripted(clean: dict[str, dict[str, Any]]) -> None:
    assert clean["r-retry"]["state"] == "SUCCEEDED"
    assert clean["r-retry"]["tasks"]["ns.a0"][:2] == ("SUCCEEDED", 2)
    # The cancelled run stays CANCELLED although its running task reported a late success.
    assert clean["r-cancel"]["state"] == "CANCELLED"
    assert {t[0] for k, t in clean["r-cancel"]["tasks"].items() if k != "ns.a0"} == {"CANCELLED"}


@pytest.mark.parametrize("mode", ["inline", "compactor", "trigger-dispatch"])
def test_the_census_names_every_write_site(tmp_path: Path, mode: str) -> None:
    world, _ = play(tmp_path, _chaos(mode))
    seen = {(w.phase, w.kind) for w in world.store.writes if w.phase}
    expected = PATH_SITES | COMPACTION_SITES
    if mode != "inline":
        expected |= CALLBACK_DISPATCH_SITES
    if mode == "trigger-dispatch":
        expected |= TRIGGER_DISPATCH_SITES
    assert seen == expected


def _chaos(mode: str, store: FaultPlan | None = None) -> Chaos:
    deferred = mode != "inline"
    return Chaos(deferred=deferred, trigger_dispatch=mode == "trigger-dispatch", store=store or FaultPlan())


@pytest.mark.parametrize(("mode", "site"), CASES)
def test_crashes_before_and_after_this_write_then_retries_converge_to_the_clean_run(
    tmp_path: Path,
    clean: dict[str, dict[str, Any]],
    faults_injected: Callable[[int, str], None],
    mode: str,
    site: tuple[str, str],
) -> None:
    # The first write of this kind in this path dies before it lands; the retry writes it and dies
    # right after (so a third attempt meets the object or the state it already committed).
    kind = f"^{re.escape(site[1])}$"
    crashes = (
        CrashAt(".*", 1, "before", phase=site[0], kind=kind),
        CrashAt(".*", 2, "after", phase=site[0], kind=kind),
    )
    world, final = play(tmp_path / "1", _chaos(mode, FaultPlan(crashes=crashes)))
    assert world.store.crashes >= 1, "the crash was never reached"
    assert_converged(world, clean, final)
    # However the deploy died, its retry left the workspace swept and its manifest current.
    assert f"{TENANT}/{WS}" in sweep(world.ctx, {})["workspaces"]
    current = load_current_manifest(world.ctx, TENANT, WS)
    assert current is not None and current.manifest_id == world.deployed
    injected = world.injected
    if world.store.crashes == 1:
        # The repair took another road (the sweep retries without a new timer): crash after the first.
        after = (CrashAt(".*", 1, "after", phase=site[0], kind=kind),)
        world, final = play(tmp_path / "2", _chaos(mode, FaultPlan(crashes=after)))
        assert world.store.crashes == 1
        assert_converged(world, clean, final)
        injected += world.injected
    faults_injected(injected, f"crashes before/after {site} ({mode})")
