"""The completing callback dispatches what its success made ready, without waiting for a publish.

These run the GCP code path's services: no inline compaction (the compactor runs only when a test
says so, as a finalize event would start it), the one-publish-a-second rule on, and the callback
dispatch on (its default with GCS storage). A chain's hop then costs a callback round trip, not a
publish of the head pointer.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servo.core.errors import CallbackRejected
from servo.core.events import decode_event
from servo.services.callbacks import task_completed, task_started
from servo.services.cancel import cancel_run
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import compact_and_act
from servo.services.read_model import load_snapshot
from servo.services.runs import load_run
from servo.services.trigger import trigger_run
from servo.settings import Settings

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import FakeClock, RecordingQueue, make_context
from tests.support.faults import CrashAt, FaultPlan, FaultyStore

WS = "prod"
TENANT = "default"
CHAIN = ("ns.a", "ns.b", "ns.c")


class Chain:
    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.ctx, self.clock, self.queue = _gcp_path(tmp_path, **settings)
        body = manifest(*(asset(k, *CHAIN[:i][-1:]) for i, k in enumerate(CHAIN)))
        assert deploy_manifest(self.ctx, TENANT, WS, json.dumps(body).encode(), None)[0] == 201
        answer = trigger_run(self.ctx, TENANT, WS, {"selection": ["ns.a"], "includeDownstream": True})
        self.run_id = answer[1]["runId"]
        self.publish()  # the trigger's finalize event: the plan is published, ns.a dispatched

    def publish(self) -> None:
        self.clock.advance(1000)  # the head pointer may change once a second
        assert compact_and_act(self.ctx, TENANT, WS).published

    def generation(self) -> int:
        return load_snapshot(self.ctx.workspace_store(TENANT, WS)).generation

    def envelopes(self) -> dict[str, dict[str, Any]]:
        return {e["taskKey"]: e for e in (json.loads(t.body) for t in self.queue.take())}

    def ledger(self, event_type: str) -> list[str]:
        return ledger_task_keys(self.ctx, event_type)

    def work(self, envelope: dict[str, Any], outcome: str = "SUCCEEDED") -> None:
        task_id, headers, ids = _call(envelope)
        self.clock.advance(10)
        task_started(self.ctx, task_id, headers, {**ids, "executionId": f"x-{envelope['taskKey']}"})
        self.clock.advance(10)
        task_completed(self.ctx, task_id, headers, {**ids, "outcome": outcome})


def ledger_task_keys(ctx: ServiceContext, event_type: str) -> list[str]:
    """The task keys of the workspace's ledger events of ``event_type``, sorted (one per event)."""
    store = ctx.workspace_store(TENANT, WS)
    found = []
    for meta in store.list("ledger/orchestration/"):
        obj = store.get(meta.name)
        assert obj is not None
        event = decode_event(obj.data)
        if event.event_type == event_type:
            found.append(str(getattr(event.data, "task_key", "")))
    return sorted(found)


def _gcp_path(tmp_path: Path, **settings: Any) -> tuple[ServiceContext, FakeClock, RecordingQueue]:
    return make_context(
        tmp_path,
        compact=False,
        min_publish_interval_ms=1000,
        callback_dispatch=True,
        defer_dispatch_ack=False,
        **settings,
    )


def _call(envelope: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    headers = {"authorization": f"Bearer {envelope['taskToken']}"}
    ids = {"attempt": envelope["attempt"], "attemptId": envelope["attemptId"], "workerId": "w1"}
    return envelope["taskId"], headers, ids


def test_a_chain_runs_hop_after_hop_before_the_next_publish(tmp_path: Path) -> None:
    chain = Chain(tmp_path)
    head = chain.generation()
    a = chain.envelopes()["ns.a"]
    chain.work(a)
    b = chain.envelopes()["ns.b"]  # dispatched by a's `completed`, not by a publish
    assert (b["attempt"], b["dispatchId"]) == (1, a["dispatchId"].replace("ns.a", "ns.b"))
    chain.work(b)  # b's callbacks are accepted although the head still shows it BLOCKED
    c = chain.envelopes()["ns.c"]
    assert chain.generation() == head  # two hops, no publish
    assert b["payload"]["upstream"] == {"ns.a": {}}
    chain.publish()
    assert chain.envelopes() == {}  # the compactor finds both dispatches recorded: nothing again
    chain.work(c)
    chain.publish()
    view = load_run(chain.ctx, TENANT, WS, chain.run_id)
    assert view is not None and view.run is not None and view.run.state == "SUCCEEDED"
    # One request and one acknowledgement per task: the compactor folded the callbacks' dispatches.
    assert chain.ledger("DispatchRequested") == list(CHAIN)
    assert chain.ledger("DispatchEnqueued") == list(CHAIN)


def test_the_callback_and_the_compactor_name_a_dispatch_alike_so_the_second_is_dropped(
    tmp_path: Path,
) -> None:
    # The callback enqueues b and records the request, then dies before the acknowledgement: the
    # compactor finds the request unacknowledged and enqueues it again, under the same name.
    chain = Chain(tmp_path)
    crash = FaultPlan(crashes=(CrashAt(".*", 1, "before", kind="^ledger:DispatchEnqueued$"),))
    store = FaultyStore(chain.ctx.store, crash)
    chain.ctx = replace(chain.ctx, store=store)
    chain.work(chain.envelopes()["ns.a"])  # answered 200: the completion is durable
    assert store.crashes == 1
    b = chain.envelopes()["ns.b"]
    chain.publish()
    assert chain.envelopes() == {}  # the compactor's enqueue met the name: ALREADY_EXISTS
    chain.publish()
    view = load_run(chain.ctx, TENANT, WS, chain.run_id)
    assert view is not None and view.tasks["ns.b"].state == "DISPATCHED"
    assert view.tasks["ns.b"].attempt_id == b["attemptId"]
    chain.work(b)  # the one delivery runs b, whose completion dispatches c
    assert list(chain.envelopes()) == ["ns.c"]
    assert chain.ledger("DispatchRequested") == list(CHAIN)
    assert chain.ledger("DispatchEnqueued") == list(CHAIN)


def test_a_cancel_the_deciding_view_did_not_show_stops_the_dispatch_at_started(tmp_path: Path) -> None:
    chain = Chain(tmp_path)
    a = chain.envelopes()["ns.a"]
    task_id, headers, ids = _call(a)
    task_started(chain.ctx, task_id, headers, {**ids, "executionId": "x"})
    chain.publish()
    assert cancel_run(chain.ctx, TENANT, WS, chain.run_id, {})[0] == 202  # in the ledger, unpublished
    task_completed(chain.ctx, task_id, headers, {**ids, "outcome": "SUCCEEDED"})
    b = chain.envelopes()["ns.b"]  # decided from a view without the cancel
    chain.publish()
    b_id, b_headers, b_ids = _call(b)
    with pytest.raises(CallbackRejected) as refused:
        task_started(chain.ctx, b_id, b_headers, {**b_ids, "executionId": "y"})
    assert (refused.value.http_status, refused.value.error) == (409, "task_already_terminal")
    view = load_run(chain.ctx, TENANT, WS, chain.run_id)
    assert view is not None and view.run is not None and view.run.state == "CANCELLED"
    assert {k: t.state for k, t in view.tasks.items()} == {
        "ns.a": "SUCCEEDED",
        "ns.b": "CANCELLED",
        "ns.c": "CANCELLED",
    }


def test_another_instance_that_cannot_see_the_dispatch_yet_asks_the_worker_to_retry(tmp_path: Path) -> None:
    # b's `started` reaches an instance that neither wrote b's dispatch nor sees it published: the
    # token proves the control plane decided it, so the answer is "retry" (503), never a refusal
    # that would make the worker drop the delivery.
    chain = Chain(tmp_path)
    chain.work(chain.envelopes()["ns.a"])
    b_id, b_headers, b_ids = _call(chain.envelopes()["ns.b"])
    other = replace(chain.ctx, cache={})
    with pytest.raises(CallbackRejected) as later:
        task_started(other, b_id, b_headers, {**b_ids, "executionId": "y"})
    assert later.value.http_status == 503
    chain.publish()
    assert task_started(other, b_id, b_headers, {**b_ids, "executionId": "y"})["acknowledged"] is True


def test_the_callback_dispatch_is_on_by_default_where_compaction_is_asynchronous() -> None:
    assert Settings.from_env({}).callback_dispatch is False  # embedded: the writer's publish dispatches
    gcs = {"SERVO_STORAGE": "gcs", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:1"}
    assert Settings.from_env(gcs).callback_dispatch is True
    assert Settings.from_env({**gcs, "SERVO_CALLBACK_DISPATCH": "0"}).callback_dispatch is False


def test_a_completion_whose_next_hop_its_callback_dispatched_only_records_progress(tmp_path: Path) -> None:
    # A writer's hook (the embedded stack's group commit) is told whether a publish of what it got
    # unblocks anything: a completion that dispatched its downstream does not, so a chain's hops may
    # share publishes; the run's last completion does, so the run's end is published at once.
    chain = Chain(tmp_path)
    handed: list[tuple[list[str], bool]] = []

    def hook(ctx: ServiceContext, tenant: str, ws: str, names: Any, **kwargs: Any) -> None:
        store = ctx.workspace_store(tenant, ws)
        types = []
        for name in names:
            obj = store.get(name)
            assert obj is not None
            types.append(decode_event(obj.data).event_type)
        handed.append((types, kwargs["urgent"]))

    chain.ctx = replace(chain.ctx, after_ledger_write=hook)
    chain.work(chain.envelopes()["ns.a"])
    chain.work(chain.envelopes()["ns.b"])
    chain.work(chain.envelopes()["ns.c"])
    finished = [urgent for types, urgent in handed if types == ["TaskFinished"]]
    assert finished == [False, False, True]
    assert all(not urgent for types, urgent in handed if "DispatchRequested" in types)


def test_a_task_without_downstream_leaves_nothing_for_the_other_callbacks_views(tmp_path: Path) -> None:
    # Another callback's view needs a task's facts only if they can make its downstream ready: a fan-out's
    # children (or a chain's last task) would otherwise have every callback of the run fold all their
    # siblings' unpublished starts and ends ahead of the published run, a copy of the whole run each.
    from servo.services._recent_writes import INSTANCE_KEY, RecentWrites

    chain = Chain(tmp_path)
    chain.work(chain.envelopes()["ns.a"])
    chain.work(chain.envelopes()["ns.b"])
    chain.publish()  # a's and b's facts and c's dispatch are published: the views forget them
    chain.work(chain.envelopes()["ns.c"])
    recent = chain.ctx.instance_state(INSTANCE_KEY, RecentWrites)
    part = chain.ctx.snapshot(TENANT, WS).partition(chain.run_id)
    assert part is not None
    assert recent.view(TENANT, WS, part, chain.clock()) is part


def test_a_chain_hop_folds_each_of_its_facts_ahead_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A completion is folded ahead to decide what it made ready; that view is where the run's next
    # callbacks start from, so the completion is not folded a second time onto the run's last view
    # (issue 21: folding was a tenth of the callbacks' CPU).
    from tests.services.test_recent_writes import _applied

    chain = Chain(tmp_path)
    chain.work(chain.envelopes()["ns.a"])  # the run's views start
    applied = _applied(monkeypatch)
    b = chain.envelopes()["ns.b"]
    chain.work(b)
    chain.work(chain.envelopes()["ns.c"])
    assert applied, "the callbacks fold their facts ahead"
    assert sorted(set(applied)) == sorted(applied)


def test_a_chain_hop_encodes_each_event_it_writes_once(tmp_path: Path, encodings: list[str]) -> None:
    # Every event a hop writes (started, finished, the next hop's dispatch) goes to the ledger with
    # the bytes it was made with (ledger.append_made): none is encoded a second time for the write.
    chain = Chain(tmp_path)
    chain.work(chain.envelopes()["ns.a"])
    encodings.clear()
    before = len(chain.ctx.store.list(f"{TENANT}/{WS}/ledger/orchestration/"))
    chain.work(chain.envelopes()["ns.b"])
    written = len(chain.ctx.store.list(f"{TENANT}/{WS}/ledger/orchestration/")) - before
    # b's start and end, c's dispatch request and acknowledgement (both written on GCP's path)
    assert sorted(encodings) == ["DispatchEnqueued", "DispatchRequested", "TaskFinished", "TaskStarted"]
    assert written == len(encodings)
