"""Random DAGs and runs under every external input duplicated, reordered and lost at once.

For each seed: a DAG of 3–6 assets and three runs (clean, failing retryably once or to exhaustion,
failing permanently, or cancelled while the root runs), first played cleanly, then under chaos:
triggers, dispatch and timer deliveries, finalize events and scheduler ticks duplicated (some late)
and shuffled; finalize events lost; compactors of one round running concurrently on threads; GCS
create retries that answer 412 for the caller's own object; ledger objects visible only after newer
ones; and a few crashes at random writes. Every run must end as in the clean play, with nothing lost,
one dispatch per attempt, and no terminal state (CANCELLED above all) overwritten.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from servo.http.runtime import override_context

from tests.faults.checks import assert_converged
from tests.faults.harness import Chaos, Scenario, World, random_scenario
from tests.support.faults import CrashAt, FaultPlan

CRASH_SITES = (
    ("callback", "^ledger:TaskFinished$"),
    ("callback", "^ledger:TaskStarted$"),
    ("trigger", "^ledger:PlanCreated$"),
    ("compaction", "^state:pointer$"),
    ("compaction", "^state:segments$"),
    ("compaction", "^ledger:Dispatch"),
    ("timers", "^ledger:TimerFired$"),
    ("cancel", "^ledger:RunCancelRequested$"),
)


def chaos_for(seed: int, *, deferred: bool, trigger_dispatch: bool = False) -> Chaos:
    rng = random.Random(seed * 7919)
    crashes = tuple(
        CrashAt(".*", rng.randint(1, 3), rng.choice(("before", "after")), phase=phase, kind=kind)
        for phase, kind in rng.sample(CRASH_SITES, 3)
    )
    return Chaos(
        seed=seed,
        duplicate_rate=0.3,
        shuffle=True,
        deferred=deferred,
        lose_finalize_rate=0.15 if deferred else 0.0,
        compactor_threads=3,
        store=FaultPlan(crashes=crashes, duplicate_rate=0.05, holdback_rate=0.05, seed=seed),
        lose_inline=frozenset() if deferred else frozenset(rng.sample(range(1, 40), 4)),
        trigger_dispatch=trigger_dispatch,
    )


def play(tmp_path: Path, scenario: Scenario, chaos: Chaos) -> tuple[World, dict[str, dict[str, object]]]:
    world = World(tmp_path, scenario, chaos)
    with override_context(world.ctx):
        return world, world.run()


@pytest.mark.parametrize(
    ("seed", "deferred"),
    [(17, True), (2, True), (20, True), (13, False)],
    ids=lambda v: str(v) if isinstance(v, int) else ("compactor" if v else "inline"),
)
def test_runs_converge_to_the_clean_result_under_chaos(
    tmp_path: Path, faults_injected: Callable[[int, str], None], seed: int, deferred: bool
) -> None:
    scenario = random_scenario(random.Random(seed))
    _, expected = play(tmp_path / "clean", scenario, Chaos(seed=seed))
    world, final = play(tmp_path / "chaos", scenario, chaos_for(seed, deferred=deferred))
    faults_injected(world.injected, f"seed {seed} ({'compactor' if deferred else 'inline'}) {world.counts}")
    assert world.injected > 20  # the chaos was real
    assert_converged(world, expected, final)


@pytest.mark.parametrize("seed", [17, 2])
def test_runs_whose_triggers_dispatch_their_roots_converge_under_chaos(
    tmp_path: Path, faults_injected: Callable[[int, str], None], seed: int
) -> None:
    # As on the embedded stack: a trigger dispatches its run's roots before any publish shows the run
    # (one of those dispatches crashes too), readers have what is held back published first.
    scenario = random_scenario(random.Random(seed))
    _, expected = play(tmp_path / "clean", scenario, Chaos(seed=seed))
    chaos = chaos_for(seed, deferred=True, trigger_dispatch=True)
    crash = CrashAt(".*", 1, "before", phase="trigger", kind="^ledger:DispatchRequested$")
    chaos = replace(chaos, store=replace(chaos.store, crashes=(*chaos.store.crashes, crash)))
    world, final = play(tmp_path / "chaos", scenario, chaos)
    faults_injected(world.injected, f"seed {seed} (trigger dispatch) {world.counts}")
    assert world.injected > 20
    assert_converged(world, expected, final)
