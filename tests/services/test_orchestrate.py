"""The controller pass and the compaction it follows, as the embedded stack and the compactor call them."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import act_on, compact_workspace
from servo.services.trigger import trigger_run
from servo.store import CountingStore

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context
from tests.support.stores import PointerReads

WS = "prod"


# The GCP compactor's settings: a dispatch is acknowledged at once (tests/services/test_deferred_ack.py
# has the local stacks' deferred acknowledgement).
GCP_ACK = {"defer_dispatch_ack": False}


def _deployed(tmp_path: Path) -> tuple[ServiceContext, Any]:
    ctx, _, queue = make_context(tmp_path, compact=False, **GCP_ACK)
    body = manifest(asset("ns.a"), asset("ns.b"))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    return ctx, queue


def test_one_controller_pass_reads_the_published_state_once(tmp_path: Path) -> None:
    ctx, queue = _deployed(tmp_path)
    for key in ("ns.a", "ns.b"):
        trigger_run(ctx, "default", WS, {"selection": [key]})
    _, _, _, changed = compact_workspace(ctx, "default", WS)
    assert len(changed) == 2
    reads: list[str] = []

    class CountingSnapshots(ServiceContext):
        def snapshot(self, tenant_id: str, workspace_id: str, **kw: Any) -> Any:
            reads.append(workspace_id)
            return super().snapshot(tenant_id, workspace_id, **kw)

    act_on(CountingSnapshots(**{f.name: getattr(ctx, f.name) for f in fields(ctx)}), "default", WS, changed)
    assert reads == [WS]
    assert len(queue.take()) == 2  # both runs still dispatched from the one snapshot


def test_the_controller_acts_on_the_state_its_compaction_just_published(tmp_path: Path) -> None:
    # Reading the head again after publishing it would only find the same head (or a newer one the
    # next compaction will act on): one head read per compaction and controller pass.
    from servo.services.orchestrate import compact_and_act

    ctx, queue = _deployed(tmp_path)
    trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})
    counting = PointerReads(ctx.store)
    outcome = compact_and_act(replace(ctx, store=counting), "default", WS, _ledger_names(ctx))
    assert outcome.published and outcome.effects == 2 and len(queue.take()) == 1
    assert counting.pointer_reads == 1


def test_compact_workspace_can_skip_the_list(tmp_path: Path) -> None:
    ctx, _ = _deployed(tmp_path)
    trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})
    prefix = f"default/{WS}/"
    names = [m.name[len(prefix) :] for m in ctx.store.list(f"{prefix}ledger/orchestration/")]
    counting = CountingStore(ctx.store)
    published, applied, _, _ = compact_workspace(
        replace(ctx, store=counting), "default", WS, names, list_ledger=False
    )
    assert published and applied == len(names) and counting.snapshot().lists == 0


def _ledger_names(ctx: ServiceContext) -> list[str]:
    prefix = f"default/{WS}/"
    return [m.name[len(prefix) :] for m in ctx.store.list(f"{prefix}ledger/orchestration/")]


def test_a_redelivered_finalize_of_an_applied_object_lists_nothing(tmp_path: Path) -> None:
    # Finalize events arrive at least once: a compaction whose object is already folded stops at
    # once (design §5.3) instead of paying a list and reading the window again.
    ctx, _ = _deployed(tmp_path)
    trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})
    names = _ledger_names(ctx)
    assert compact_workspace(ctx, "default", WS, names[:1])[0]
    counting = CountingStore(ctx.store)
    published, applied, _, _ = compact_workspace(replace(ctx, store=counting), "default", WS, names[:1])
    assert not published and applied == 0
    assert counting.snapshot().lists == 0 and counting.snapshot().writes == 0


class _ListGate(CountingStore):
    """Holds every list until the test opens the gate."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.listing = threading.Event()
        self.gate = threading.Event()

    def list(self, prefix: str, **kw: Any) -> Any:
        self.listing.set()
        assert self.gate.wait(10)
        return super().list(prefix, **kw)


def test_compactions_that_wait_on_one_in_flight_ride_its_publish(tmp_path: Path) -> None:
    # Many finalize events of one workspace reach one instance at once. One compaction runs; the
    # others wait for it and stop if it folded their objects, instead of each listing, folding and
    # losing the publish race (on GCS, also each sleeping out the 1-s publish interval).
    ctx, _ = _deployed(tmp_path)
    trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})
    first = _ledger_names(ctx)
    gated = _ListGate(ctx.store)
    shared = replace(ctx, store=gated)
    results: dict[str, Any] = {}

    def compaction(label: str, hint: list[str]) -> None:
        results[label] = compact_workspace(shared, "default", WS, hint)

    leader = threading.Thread(target=compaction, args=("leader", first[:1]))
    leader.start()
    assert gated.listing.wait(10)  # the leader is about to list
    trigger_run(ctx, "default", WS, {"selection": ["ns.b"]})
    later = [n for n in _ledger_names(ctx) if n not in first]
    followers = [threading.Thread(target=compaction, args=(f"f{i}", [n])) for i, n in enumerate(later)]
    for t in followers:
        t.start()
    flights = ctx.cache["compaction-flights"]
    for _ in range(1000):  # until every follower waits on the leader's flight
        if flights.followers(("default", WS)) == len(later):
            break
        time.sleep(0.01)
    gated.gate.set()
    for t in [leader, *followers]:
        t.join(10)
    assert results["leader"][0] and results["leader"][1] == len(first) + len(later)
    assert all(not results[f"f{i}"][0] for i in range(len(later)))
    assert gated.snapshot().lists == 1


def test_a_controller_pass_does_not_request_again_what_it_requested_before_the_publish(
    tmp_path: Path,
) -> None:
    # On GCS a publish can come before the dispatch requests of the previous pass are folded (the
    # compaction listed first, or that pass is still appending), so the same READY tasks come back:
    # requesting them again would only append the same events again (a 1,000-task fan-out wrote
    # 2.2 requests per task). A pass that finds its request fresh in this instance skips it.
    ctx, queue = _deployed(tmp_path)
    trigger_run(ctx, "default", WS, {"selection": ["ns.a", "ns.b"]})
    _, _, _, changed = compact_workspace(ctx, "default", WS)
    first = act_on(ctx, "default", WS, changed)
    assert first > 0 and len(queue.take()) == 2
    assert act_on(ctx, "default", WS, changed) == 0  # same published state: nothing new to carry out
    assert queue.take() == []


def test_a_request_not_folded_after_a_while_is_made_again(tmp_path: Path) -> None:
    # The memory is a shortcut, not a lock: if the requests never show up folded (their write or its
    # compaction was lost), a later pass requests again under the same deterministic names.
    from servo.services.effects import RECENT_DECISION_TTL_MS

    ctx, clock, _ = make_context(tmp_path, compact=False, **GCP_ACK)
    body = manifest(asset("ns.a"))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})
    _, _, _, changed = compact_workspace(ctx, "default", WS)
    assert act_on(ctx, "default", WS, changed) == 2  # DispatchRequested + DispatchEnqueued
    clock.advance(RECENT_DECISION_TTL_MS + 1)
    assert act_on(ctx, "default", WS, changed) == 2


def test_what_riders_were_handed_reaches_the_leader_before_it_looks() -> None:
    from servo.services._flights import Flights

    flights = Flights()
    inside, release = threading.Event(), threading.Event()
    seen: list[list[str]] = []

    def lead(more: Any) -> str:
        inside.set()
        assert release.wait(10)
        seen.append(more())
        return "published"

    leader = threading.Thread(target=flights.run, args=("ws", lead, lambda _r: True, ["a"]))
    leader.start()
    assert inside.wait(10)
    rider = threading.Thread(target=flights.run, args=("ws", lead, lambda _r: True, ["b", "c"]))
    rider.start()
    for _ in range(1000):
        if flights.followers("ws") == 1:
            break
        time.sleep(0.01)
    release.set()
    leader.join(10)
    rider.join(10)
    assert seen == [["b", "c"]]


def test_a_pass_that_fails_leaves_its_requests_to_the_next_pass(tmp_path: Path) -> None:
    ctx, queue = _deployed(tmp_path)
    trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})
    _, _, _, changed = compact_workspace(ctx, "default", WS)

    class Down:
        def enqueue(self, queue: str, task: Any) -> Any:
            raise ConnectionError("Cloud Tasks unavailable")

    with pytest.raises(ConnectionError):
        act_on(replace(ctx, queue=Down()), "default", WS, changed)  # type: ignore[arg-type]
    assert act_on(ctx, "default", WS, changed) == 2  # requested at once, not a minute later
    assert len(queue.take()) == 1
