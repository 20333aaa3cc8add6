"""Group commit: concurrent writers share compactions, and each still reads its own write."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servo.dev.embedded import GroupCommit
from servo.services.manifests import deploy_manifest
from servo.services.runs import load_run
from servo.services.trigger import trigger_run
from servo.store import CountingStore

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context

WS = "prod"


def test_concurrent_triggers_share_compactions_and_each_sees_its_run(tmp_path: Path) -> None:
    ctx, _, _ = make_context(tmp_path, compact=False)
    assert deploy_manifest(ctx, "default", WS, json.dumps(manifest(asset("ns.a"))).encode(), None)[0] == 201
    group = GroupCommit()
    counting = CountingStore(ctx.store)
    pointer_writes: list[str] = []

    class Spy:
        """Counts head-pointer publishes at the store port."""

        def __getattr__(self, name: str) -> Any:
            return getattr(counting, name)

        def put(self, name: str, data: bytes, **kw: Any) -> int:
            if name.endswith("manifest.pointer.json"):
                pointer_writes.append(name)
            return counting.put(name, data, **kw)

    def hook(c: Any, tenant: str, ws: str, names: Any) -> None:
        group.commit(c, (tenant, ws), names, lambda *_: None)

    ctx = replace(ctx, store=Spy(), after_ledger_write=hook)  # type: ignore[arg-type]
    seen: dict[int, bool] = {}
    start = threading.Barrier(16)

    def writer(i: int) -> None:
        start.wait()
        _, body = trigger_run(ctx, "default", WS, {"selection": ["ns.a"]})
        seen[i] = load_run(replace(ctx, cache={}), "default", WS, body["runId"]) is not None

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert seen == dict.fromkeys(range(16), True)  # read-after-write for every writer
    assert 1 <= len(pointer_writes) < 16  # and fewer publishes than writes


def test_a_failed_compaction_releases_its_waiters(tmp_path: Path) -> None:
    ctx, _, _ = make_context(tmp_path, compact=False)
    calls: list[list[str]] = []

    def failing(_ctx: Any, _tenant: str, _ws: str, names: list[str]) -> Any:
        calls.append(names)
        raise RuntimeError("compaction failed")

    group = GroupCommit(failing)
    with pytest.raises(RuntimeError):
        group.commit(ctx, ("default", WS), ["ledger/orchestration/x.json"], lambda *_: None)
    # The next writer is not blocked behind the failure: it leads its own compaction.
    with pytest.raises(RuntimeError):
        group.commit(ctx, ("default", WS), ["ledger/orchestration/y.json"], lambda *_: None)
    assert calls == [["ledger/orchestration/x.json"], ["ledger/orchestration/y.json"]]
