"""Lost finalize events (the sweep alone moves the runs), many compactors racing on one head, and
callbacks on instances that did not write what came before them."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.checks import assert_converged
from tests.faults.harness import Chaos
from tests.faults.test_chaos import play, random_scenario

SEED = 11
SCENARIO = random_scenario(random.Random(SEED), n_runs=2)


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return play(tmp_path_factory.mktemp("clean"), SCENARIO, Chaos(seed=SEED))[1]


@pytest.mark.parametrize(
    ("label", "chaos"),
    [
        ("every inline compaction skipped", Chaos(seed=SEED, lose_inline=frozenset(range(1, 10_000)))),
        ("every finalize event lost", Chaos(seed=SEED, deferred=True, lose_finalize_rate=1.0)),
    ],
    ids=["inline", "compactor"],
)
def test_with_every_finalize_lost_the_sweep_alone_converges(
    tmp_path: Path,
    expected: dict[str, dict[str, Any]],
    faults_injected: Callable[[int, str], None],
    label: str,
    chaos: Chaos,
) -> None:
    world, final = play(tmp_path, SCENARIO, chaos)
    faults_injected(world.injected, f"seed {SEED}: {label}")
    assert world.counts["lost_finalize"] > 10
    assert_converged(world, expected, final)


def test_eight_compactors_at_once_on_duplicated_finalize_events(
    tmp_path: Path, expected: dict[str, dict[str, Any]], faults_injected: Callable[[int, str], None]
) -> None:
    chaos = Chaos(seed=SEED, deferred=True, duplicate_rate=1.0, compactor_threads=8)
    world, final = play(tmp_path, SCENARIO, chaos)
    racing = world.counts["concurrent_compactions"]
    faults_injected(world.injected, f"seed {SEED}: {racing} compactions racing in rounds of up to 8")
    assert racing > 20
    assert_converged(world, expected, final)


@pytest.mark.parametrize("trigger_dispatch", [False, True], ids=["compactor-roots", "trigger-roots"])
def test_callbacks_on_instances_without_the_dispatching_ones_memory_converge(
    tmp_path: Path,
    expected: dict[str, dict[str, Any]],
    faults_injected: Callable[[int, str], None],
    trigger_dispatch: bool,
) -> None:
    # A completion dispatches its downstream at once; that task's `started` then reaches an instance
    # that sees only the published head, where it may still be BLOCKED: "retry" (503), and the
    # queue's redelivery after the next publish runs it. Duplicates ride along. A root its trigger
    # dispatched may find its whole run unpublished there: "retry" too, never "no such task".
    chaos = Chaos(
        seed=SEED,
        deferred=True,
        callback_amnesia=True,
        duplicate_rate=0.3,
        trigger_dispatch=trigger_dispatch,
    )
    world, final = play(tmp_path, SCENARIO, chaos)
    faults_injected(world.injected, f"seed {SEED}: {world.counts['not_visible']} starts told to retry")
    assert world.counts["not_visible"] > 0
    assert (world.counts["run_not_visible"] > 0) == trigger_dispatch
    assert_converged(world, expected, final)
