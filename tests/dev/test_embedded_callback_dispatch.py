"""A chain hop on the embedded stack: the completing callback dispatches the next task (issue 21).

``servo dev`` used to dispatch a chain's next task only from the publish that showed it READY, so every
hop paid a compaction and a publish (fold, Parquet, two durable writes). Now, as on GCS, the completing
callback dispatches what its success made ready (services/callback_dispatch) and the group commit
publishes when its window says so. The windows here are far longer than the test's deadlines, so a hop
that still waited for a publish would never happen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from servo.projections.layout import POINTER_PATH

from bench import _stacks
from bench._api import TENANT, deploy, trigger, wait_state
from bench._graphs import chain_keys, write_servo_project
from bench._instrument import PrefixTally, prefix_of

NEVER_MS = 600_000  # a window no test outlives: a publish it holds back never comes
DEADLINE_S = 60
WS = "chain3"


def _stack(tmp_path: Path, **settings: Any) -> Iterator[_stacks.Target]:
    project = write_servo_project(tmp_path / "project", (3,), ())
    with _stacks.embedded(project, tmp_path / "data", settings) as target:
        assert deploy(requests.Session(), target.api_url, WS, project, WS) == 3
        yield target


def _head_generation(target: _stacks.Target) -> int:
    """The head pointer's generation; 0 while nothing was published (a deploy publishes no state)."""
    assert target.counting is not None
    head = target.counting.get(f"{TENANT}/{WS}/{POINTER_PATH}")
    return 0 if head is None else head.generation


def _publishes(target: _stacks.Target) -> int:
    """Head pointer writes so far: one a publish."""
    assert isinstance(target.tally, PrefixTally)
    return target.tally.snapshot().get((prefix_of(f"{TENANT}/{WS}/{POINTER_PATH}"), "write"), 0)


@pytest.fixture
def held_publishes(tmp_path: Path) -> Iterator[_stacks.Target]:
    """A stack whose group commit publishes only for a writer someone waits on (deploy, trigger)."""
    yield from _stack(tmp_path, group_commit_window_ms=NEVER_MS, group_commit_progress_window_ms=NEVER_MS)


@pytest.fixture
def progress_held(tmp_path: Path) -> Iterator[_stacks.Target]:
    """A stack whose group commit holds writes that only record progress for ever."""
    yield from _stack(tmp_path, group_commit_progress_window_ms=NEVER_MS)


def _ran(target: _stacks.Target, http: requests.Session) -> str:
    """The 3-chain triggered; its run id once the worker had all three tasks accepted as done."""
    run_id = trigger(http, target.api_url, WS, chain_keys(3)[0], downstream=True)
    assert target.timeline.wait_completed(run_id, 3, DEADLINE_S)
    return run_id


def _reads_succeeded(target: _stacks.Target, http: requests.Session, run_id: str) -> None:
    run, _ = wait_state(http, target.api_url, WS, run_id, DEADLINE_S, every=0.05)
    assert run["state"] == "SUCCEEDED"
    assert {t["taskKey"]: t["state"] for t in run["tasks"]} == dict.fromkeys(chain_keys(3), "SUCCEEDED")


def test_a_chain_hops_from_callback_to_dispatch_without_a_publish(held_publishes: _stacks.Target) -> None:
    target = held_publishes
    published = _head_generation(target)
    run_id = _ran(target, requests.Session())
    received = sorted(target.timeline.of_run(run_id).values(), key=lambda t: t.received)
    assert [t.task_key for t in received] == chain_keys(3)
    assert _head_generation(target) == published  # three hops, not one publish between them


def test_a_short_run_is_published_once_at_its_end_without_a_reader(progress_held: _stacks.Target) -> None:
    # The trigger dispatched the root, every completion but the last its own next hop: the creation,
    # starts and hops only record progress (held back); the last completion ends the run and is
    # published at once, with all of them, though nobody asked (a GetRun would have the stack publish
    # anyway: ServiceContext.before_read).
    target, http = progress_held, requests.Session()
    before = _publishes(target)
    run_id = _ran(target, http)
    deadline = time.monotonic() + DEADLINE_S
    while _publishes(target) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert target.wait_idle(DEADLINE_S)
    assert _publishes(target) == before + 1
    _reads_succeeded(target, http, run_id)


def test_a_trigger_dispatches_its_roots_and_a_reader_gets_the_run_published(
    held_publishes: _stacks.Target,
) -> None:
    # The trigger dispatches the root itself (services/trigger_dispatch): the whole run happens with
    # no publish at all. GetRun then waits for the one publish that shows it.
    target, http = held_publishes, requests.Session()
    before = _publishes(target)
    run_id = _ran(target, http)
    assert _publishes(target) == before
    _reads_succeeded(target, http, run_id)
    assert _publishes(target) == before + 1


def test_a_run_is_readable_the_moment_its_trigger_answered(held_publishes: _stacks.Target) -> None:
    target, http = held_publishes, requests.Session()
    run_id = trigger(http, target.api_url, WS, chain_keys(3)[0], downstream=True)
    got = http.get(f"{target.api_url}/v1/workspaces/{WS}/runs/{run_id}", timeout=DEADLINE_S)
    assert got.status_code == 200, got.text
    assert got.json()["runId"] == run_id
    listed = http.get(f"{target.api_url}/v1/workspaces/{WS}/runs", timeout=DEADLINE_S).json()
    assert run_id in [r["runId"] for r in listed["runs"]]
