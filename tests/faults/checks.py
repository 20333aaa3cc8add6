"""What must hold after a World ran under faults (design §5, §6, §10; issue 7 item 2)."""

from __future__ import annotations

from typing import Any

from servo.core.ids import cloud_task_id
from servo.services.compaction import load_published_state, rebuild

from tests.faults.harness import TENANT, TERMINAL_RUN, TERMINAL_TASK, WS, World
from tests.services.compaction_support import view


def assert_converged(
    world: World, expected: dict[str, dict[str, Any]], final: dict[str, dict[str, Any]]
) -> None:
    """Every invariant of the fault suite, with messages that say which one broke."""
    # Same final public state (run and task states, attempts, error categories, outputs) as a clean run.
    assert final == expected, f"diverged from the clean run:\n got {final}\nwant {expected}"
    assert all(v["state"] in TERMINAL_RUN for v in final.values()), f"non-terminal run left: {final}"
    _nothing_lost(world)
    _one_dispatch_per_attempt(world)
    _terminal_is_final(world)


def _nothing_lost(world: World) -> None:
    projected = world.projection_events()
    ledger = world.ledger_events()
    for label, run_id in world.run_ids.items():
        missing = ledger.get(run_id, set()) - projected[run_id]
        assert not missing, f"{label}: ledger events never folded: {sorted(missing)}"
        invented = projected[run_id] - ledger.get(run_id, set())
        assert not invented, f"{label}: projection holds events the ledger does not: {sorted(invented)}"
    accepted = {name.rsplit("/", 1)[-1].removesuffix(".json") for name in world.accepted_events}
    # A heartbeat is accepted, then forgotten once a newer one of its attempt folds.
    accepted -= set().union(*world.ledger_events(superseded=True).values())
    folded = set().union(*projected.values())
    assert accepted <= folded, f"accepted callbacks missing from the projection: {sorted(accepted - folded)}"
    # Rebuilding from the ledger alone reproduces the live projection (design §5.2).
    store = world.ctx.workspace_store(TENANT, WS)
    rebuilt, malformed = rebuild(store, tenant_id=TENANT, workspace_id=WS)
    assert not malformed
    assert view(rebuilt) == view(load_published_state(store, tenant_id=TENANT, workspace_id=WS))


def _one_dispatch_per_attempt(world: World) -> None:
    """One Cloud Task per attempt, under the deterministic name of its dispatch id (no worker here is
    ever stuck long enough for the sweep's re-dispatch under a repair name to be due)."""
    for (run_id, task_key, attempt), sent in world.dispatches().items():
        assert len(sent) == 1, f"{run_id}/{task_key} attempt {attempt} dispatched {len(sent)} times: {sent}"
        ((name, _, dispatch_id),) = sent
        assert name == cloud_task_id(dispatch_id), f"{run_id}/{task_key}: {name} is not its dispatch's name"


def _terminal_is_final(world: World) -> None:
    """Once a run or task shows a terminal state (CANCELLED above all), every later read shows it too."""
    for label, views in world.history.items():
        run_final: str | None = None
        task_final: dict[str, tuple[Any, ...]] = {}
        for seen in views:
            if run_final is not None:
                assert seen["state"] == run_final, f"{label}: run {run_final} overwritten by {seen['state']}"
            elif seen["state"] in TERMINAL_RUN:
                run_final = seen["state"]
            for key, task in seen["tasks"].items():
                if key in task_final:
                    assert task[:2] == task_final[key][:2], f"{label}/{key}: {task_final[key]} became {task}"
                elif task[0] in TERMINAL_TASK:
                    task_final[key] = task
