"""The controller pass and the compaction it follows, as the embedded stack and the compactor call them."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import act_on, compact_workspace
from servo.services.trigger import trigger_run
from servo.store import CountingStore

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context

WS = "prod"


def _deployed(tmp_path: Path) -> tuple[ServiceContext, Any]:
    ctx, _, queue = make_context(tmp_path, compact=False)
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
        def snapshot(self, tenant_id: str, workspace_id: str) -> Any:
            reads.append(workspace_id)
            return super().snapshot(tenant_id, workspace_id)

    act_on(CountingSnapshots(**{f.name: getattr(ctx, f.name) for f in fields(ctx)}), "default", WS, changed)
    assert reads == [WS]
    assert len(queue.take()) == 2  # both runs still dispatched from the one snapshot


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
