"""A chain hop on the embedded stack: the completing callback dispatches the next task (issue 21).

``servo dev`` used to dispatch a chain's next task only from the publish that showed it READY, so every
hop paid a compaction and a publish (fold, Parquet, two durable writes). Now, as on GCS, the completing
callback dispatches what its success made ready (services/callback_dispatch) and the group commit
publishes when its window says so. The windows here are far longer than the test's deadlines, so a hop
that still waited for a publish would never happen.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from servo.dev.embedded import EmbeddedStack
from servo.dispatch import InProcessTransport
from servo.worker import project_assets, serve_app

from bench._api import TENANT, deploy, trigger, wait_state
from bench._graphs import chain_keys, write_servo_project
from bench._instrument import TimedTransport, TimedWorkerApp, Timeline

NEVER_MS = 600_000  # a window no test outlives: a publish it holds back never comes
DEADLINE_S = 60


@dataclass
class Dev:
    stack: EmbeddedStack
    timeline: Timeline
    project: Path

    @property
    def http(self) -> requests.Session:
        return requests.Session()

    def head_generation(self, ws: str) -> int:
        assert self.stack.ctx is not None
        seen = self.stack.ctx.last_seen_snapshot(TENANT, ws)
        assert seen is not None
        return seen.generation


def _dev(tmp_path: Path, n: int, **settings: Any) -> Iterator[Dev]:
    project = write_servo_project(tmp_path / "project", (n,), ())
    secret = secrets.token_urlsafe(16)
    transport = InProcessTransport()
    timeline = Timeline()
    app = TimedWorkerApp(
        project_assets(project),
        dispatch_secret=secret,
        worker_id="test-worker",
        transport=TimedTransport(transport, timeline),
    )
    app.timeline = timeline
    worker = serve_app(app)
    transport.mount(worker.url, worker.app)
    stack = EmbeddedStack(
        tmp_path / "data",
        worker_url=f"{worker.url}/dispatch",
        sweep_interval_s=0,
        settings_overrides={"dispatch_secret": secret, **settings},
        transport=transport,
    ).start()
    try:
        yield Dev(stack, timeline, project)
    finally:
        stack.stop()
        worker.stop()


@pytest.fixture
def held_publishes(tmp_path: Path) -> Iterator[Dev]:
    """A stack whose group commit publishes only for a writer someone waits on (deploy, trigger)."""
    yield from _dev(tmp_path, 3, group_commit_window_ms=NEVER_MS, group_commit_progress_window_ms=NEVER_MS)


def test_a_chain_hops_from_callback_to_dispatch_without_a_publish(held_publishes: Dev) -> None:
    dev, ws = held_publishes, "chain3"
    http = dev.http
    assert deploy(http, dev.stack.api_url, ws, dev.project, ws) == 3
    run_id = trigger(http, dev.stack.api_url, ws, chain_keys(3)[0], downstream=True)
    published = dev.head_generation(ws)  # the trigger's caller waited for this one
    assert dev.timeline.wait_completed(run_id, 3, DEADLINE_S)
    assert [t.task_key for t in sorted(dev.timeline.of_run(run_id).values(), key=lambda t: t.received)] == (
        chain_keys(3)
    )
    assert dev.head_generation(ws) == published  # three hops, not one publish between them


@pytest.fixture
def progress_held(tmp_path: Path) -> Iterator[Dev]:
    """A stack whose group commit holds writes that only record progress for ever."""
    yield from _dev(tmp_path, 3, group_commit_progress_window_ms=NEVER_MS)


def test_the_hops_share_a_publish_and_the_runs_end_is_published_at_once(progress_held: Dev) -> None:
    # Every completion but the last dispatched its own next hop (only progress, held back); the last
    # one ends the run, and a reader polling GetRun sees that without waiting for the progress window.
    dev, ws = progress_held, "chain3"
    http = dev.http
    deploy(http, dev.stack.api_url, ws, dev.project, ws)
    run_id = trigger(http, dev.stack.api_url, ws, chain_keys(3)[0], downstream=True)
    run, _ = wait_state(http, dev.stack.api_url, ws, run_id, DEADLINE_S, every=0.05)
    assert run["state"] == "SUCCEEDED"
    assert {t["taskKey"]: t["state"] for t in run["tasks"]} == dict.fromkeys(chain_keys(3), "SUCCEEDED")
