"""A fan-out's leaf completion only records progress: its publish may wait for company (issue 21).

The embedded stack's group commit publishes urgent writes after a short window and lets writes that
unblock nothing wait a longer one. A leaf's success neither dispatches anything nor, while another
task of the run is open, ends the run: a 1,000-task fan-out's completions then share a publish every
progress window instead of paying one every short window. Whatever someone waits on stays urgent:
the completion that ends the run, a failure (its retry is the compactor's decision), and a completion
in a run being cancelled (the cancel ends when its tasks do).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from servo.services._compaction_ledger import read_events
from servo.services.callbacks import task_completed, task_started
from servo.services.cancel import cancel_run
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import compact_and_act
from servo.services.runs import load_run
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.services.test_callback_dispatch import _call, _gcp_path

WS = "prod"
TENANT = "default"
LEAVES = ("ns.b", "ns.c", "ns.d")


class FanOut:
    """ns.a and its three leaves, on the GCP code path's services, recording what each write's hook is
    told: the event types written, and whether their publish is urgent."""

    def __init__(self, tmp_path: Path) -> None:
        self.ctx, self.clock, self.queue = _gcp_path(tmp_path)
        body = manifest(asset("ns.a"), *(asset(k, "ns.a") for k in LEAVES))
        assert deploy_manifest(self.ctx, TENANT, WS, json.dumps(body).encode(), None)[0] == 201
        answer = trigger_run(self.ctx, TENANT, WS, {"selection": ["ns.a"], "includeDownstream": True})
        self.run_id = answer[1]["runId"]
        self.publish()
        self.handed: list[tuple[list[str], bool]] = []
        self.ctx = replace(self.ctx, after_ledger_write=self._hook)
        self.work(self.envelopes()["ns.a"])
        self.leaves = self.envelopes()  # dispatched by a's completion
        assert sorted(self.leaves) == list(LEAVES)

    def _hook(self, ctx: ServiceContext, tenant: str, ws: str, names: Any, **kwargs: Any) -> None:
        found = read_events(ctx.workspace_store(tenant, ws), names, tenant, ws)
        self.handed.append(([e.event_type for e in found.events], kwargs["urgent"]))

    def publish(self) -> None:
        self.clock.advance(1000)  # the head pointer may change once a second
        assert compact_and_act(self.ctx, TENANT, WS).published

    def envelopes(self) -> dict[str, dict[str, Any]]:
        return {e["taskKey"]: e for e in (json.loads(t.body) for t in self.queue.take())}

    def start(self, key: str) -> None:
        task_id, headers, ids = _call(self.leaves[key])
        self.clock.advance(10)
        task_started(self.ctx, task_id, headers, {**ids, "executionId": f"x-{key}"})

    def complete(self, key: str, outcome: str = "SUCCEEDED") -> bool:
        """Complete ``key``'s attempt; whether its TaskFinished was handed over as urgent (at first,
        or again once the callback found it was the run's last)."""
        task_id, headers, ids = _call(self.leaves[key])
        self.clock.advance(10)
        self.handed.clear()
        task_completed(self.ctx, task_id, headers, {**ids, "outcome": outcome})
        assert {tuple(types) for types, _ in self.handed} == {("TaskFinished",)}
        return any(urgent for _, urgent in self.handed)

    def work(self, envelope: dict[str, Any]) -> None:
        task_id, headers, ids = _call(envelope)
        self.clock.advance(10)
        task_started(self.ctx, task_id, headers, {**ids, "executionId": f"x-{envelope['taskKey']}"})
        self.clock.advance(10)
        task_completed(self.ctx, task_id, headers, {**ids, "outcome": "SUCCEEDED"})


def test_a_leaf_completion_while_its_siblings_run_only_records_progress(tmp_path: Path) -> None:
    fan = FanOut(tmp_path)
    for key in LEAVES:
        fan.start(key)
    assert [fan.complete("ns.b"), fan.complete("ns.c")] == [False, False]
    fan.publish()  # the last completion's view shows its siblings done: it ends the run
    assert fan.complete("ns.d") is True


def test_the_leaf_that_ends_the_run_is_urgent_though_no_publish_shows_its_siblings_done(
    tmp_path: Path,
) -> None:
    # The leaves' facts are not folded ahead (nothing waits on them), so the last one's view still
    # shows its siblings running: what this instance wrote tells it they are not.
    fan = FanOut(tmp_path)
    for key in LEAVES:
        fan.start(key)
    assert [fan.complete("ns.b"), fan.complete("ns.c"), fan.complete("ns.d")] == [False, False, True]
    fan.publish()
    view = load_run(fan.ctx, TENANT, WS, fan.run_id)
    assert view is not None and view.run.state == "SUCCEEDED"


def test_a_completion_that_dispatches_nothing_but_unblocks_a_decision_is_urgent(tmp_path: Path) -> None:
    fan = FanOut(tmp_path)
    for key in LEAVES:
        fan.start(key)
    assert fan.complete("ns.b", "FAILED") is True  # the compactor decides its retry
    assert cancel_run(fan.ctx, TENANT, WS, fan.run_id, {})[0] == 202
    fan.publish()
    assert fan.complete("ns.c") is True  # the cancel ends when the run's tasks do
