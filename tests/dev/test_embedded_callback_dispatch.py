"""A chain hop on the embedded stack: the completing callback dispatches the next task (issue 21).

``servo dev`` used to dispatch a chain's next task only from the publish that showed it READY, so every
hop paid a compaction and a publish (fold, Parquet, two durable writes). Now, as on GCS, the completing
callback dispatches what its success made ready (services/callback_dispatch) and the group commit
publishes when its window says so. The windows here are far longer than the test's deadlines, so a hop
that still waited for a publish would never happen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from servo.projections.layout import POINTER_PATH

from bench import _stacks
from bench._api import TENANT, deploy, trigger, wait_state
from bench._graphs import chain_keys, write_servo_project

NEVER_MS = 600_000  # a window no test outlives: a publish it holds back never comes
DEADLINE_S = 60
WS = "chain3"


def _stack(tmp_path: Path, **settings: Any) -> Iterator[_stacks.Target]:
    project = write_servo_project(tmp_path / "project", (3,), ())
    with _stacks.embedded(project, tmp_path / "data", settings) as target:
        assert deploy(requests.Session(), target.api_url, WS, project, WS) == 3
        yield target


def _head_generation(target: _stacks.Target) -> int:
    assert target.counting is not None
    head = target.counting.get(f"{TENANT}/{WS}/{POINTER_PATH}")
    assert head is not None
    return head.generation


@pytest.fixture
def held_publishes(tmp_path: Path) -> Iterator[_stacks.Target]:
    """A stack whose group commit publishes only for a writer someone waits on (deploy, trigger)."""
    yield from _stack(tmp_path, group_commit_window_ms=NEVER_MS, group_commit_progress_window_ms=NEVER_MS)


@pytest.fixture
def progress_held(tmp_path: Path) -> Iterator[_stacks.Target]:
    """A stack whose group commit holds writes that only record progress for ever."""
    yield from _stack(tmp_path, group_commit_progress_window_ms=NEVER_MS)


def test_a_chain_hops_from_callback_to_dispatch_without_a_publish(held_publishes: _stacks.Target) -> None:
    target = held_publishes
    run_id = trigger(requests.Session(), target.api_url, WS, chain_keys(3)[0], downstream=True)
    published = _head_generation(target)  # the trigger's caller waited for this one
    assert target.timeline.wait_completed(run_id, 3, DEADLINE_S)
    received = sorted(target.timeline.of_run(run_id).values(), key=lambda t: t.received)
    assert [t.task_key for t in received] == chain_keys(3)
    assert _head_generation(target) == published  # three hops, not one publish between them


def test_the_hops_share_a_publish_and_the_runs_end_is_published_at_once(
    progress_held: _stacks.Target,
) -> None:
    # Every completion but the last dispatched its own next hop (only progress, held back); the last
    # one ends the run, and a reader polling GetRun sees that without waiting for the progress window.
    target, http = progress_held, requests.Session()
    run_id = trigger(http, target.api_url, WS, chain_keys(3)[0], downstream=True)
    run, _ = wait_state(http, target.api_url, WS, run_id, DEADLINE_S, every=0.05)
    assert run["state"] == "SUCCEEDED"
    assert {t["taskKey"]: t["state"] for t in run["tasks"]} == dict.fromkeys(chain_keys(3), "SUCCEEDED")
