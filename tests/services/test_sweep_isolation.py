"""The sweep's own bookkeeping is out of tenants' reach, and one bad workspace never stops it for the others.

The attack: tenant ``_servo`` with workspace ``workspaces`` (both matched ``[a-z0-9_-]+``) wrote its
manifests into the sweep's registry of workspaces; the sweep then failed every tick, and no workspace
after it was swept again (no zombie detection, timeouts or cancel grace).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from servo.core.errors import InvalidId
from servo.dev.embedded import router_app
from servo.services.manifests import deploy_manifest
from servo.services.timers import WORKSPACES_PREFIX, sweep
from servo.store import ScopedStore

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context

MANIFEST = json.dumps(manifest(asset("ns.a"))).encode()


def _client_and_ctx(tmp_path: Path) -> tuple[Any, Any]:
    ctx, _, _ = make_context(tmp_path)
    return router_app(lambda: ctx).test_client(), ctx


def test_the_tenant_that_names_the_sweep_registry_is_refused(tmp_path: Path) -> None:
    client, ctx = _client_and_ctx(tmp_path)
    res = client.post(
        "/v1/workspaces/workspaces/manifests",
        data=MANIFEST,
        headers={"X-Servo-Tenant": "_servo", "Content-Type": "application/json"},
    )
    assert res.status_code == 400, res.get_json()
    assert "reserved" in res.get_json()["message"]
    assert ctx.store.list("") == []
    # Below the HTTP edge too: no tenant-scoped store can be made for it.
    with pytest.raises(InvalidId, match="reserved"):
        ScopedStore(ctx.store, "_servo", "workspaces")


def test_a_bad_registry_entry_is_skipped_and_reported_and_every_other_workspace_is_swept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx, _, _ = make_context(tmp_path)
    for ws in ("alpha", "omega"):
        assert deploy_manifest(ctx, "default", ws, MANIFEST, None)[0] == 201
    # Entries no deploy writes any more: a name with too many parts, and an id the edge refuses.
    ctx.store.create(f"{WORKSPACES_PREFIX}default/beta/manifests/x.json", b"{}")
    ctx.store.create(f"{WORKSPACES_PREFIX}BAD/gamma", b"{}")
    # A workspace whose own sweep fails: its head pointer is not JSON.
    assert deploy_manifest(ctx, "default", "delta", MANIFEST, None)[0] == 201
    ctx.store.create("default/delta/state/orchestration/manifest.pointer.json", b"\x00not json")

    with caplog.at_level(logging.WARNING, logger="servo.timers"):
        report = sweep(ctx, {})

    assert sorted(report["workspaces"]) == ["default/alpha", "default/omega"]
    skipped = {entry["workspace"]: entry["error"] for entry in report["skipped"]}
    assert set(skipped) == {"default/beta/manifests/x.json", "BAD/gamma", "default/delta"}
    assert all(str(tmp_path) not in message for message in skipped.values())
    logged = [r for r in caplog.records if r.servo["labels"].get("workspace") in skipped]
    assert len(logged) == 3, [r.getMessage() for r in caplog.records]


def test_a_ledger_object_truncated_to_nothing_never_wedges_the_sweep(tmp_path: Path) -> None:
    from servo.services.trigger import trigger_run

    ctx, _, _ = make_context(tmp_path)
    assert deploy_manifest(ctx, "default", "prod", MANIFEST, None)[0] == 201
    assert trigger_run(ctx, "default", "prod", {"selection": ["ns.a"]})[0] == 201
    newest = ctx.store.list("default/prod/ledger/orchestration/")[-1].name
    path = ctx.store.root.joinpath(*newest.split("/"))
    path.write_bytes(b"")
    for _ in range(2):  # every tick, not only the first
        report = sweep(ctx, {})
        assert report["skipped"] == [] and "default/prod" in report["workspaces"], report
    client = router_app(lambda: ctx).test_client()
    listed = client.get("/v1/workspaces/prod/runs")
    assert listed.status_code == 200
    assert str(tmp_path) not in listed.get_data(as_text=True)


def test_a_truncated_object_a_writer_hands_over_is_reported_as_malformed(tmp_path: Path) -> None:
    from servo.services.orchestrate import compact_workspace

    ctx, _, _ = make_context(tmp_path, compact=False)
    assert deploy_manifest(ctx, "default", "prod", MANIFEST, None)[0] == 201
    store = ctx.workspace_store("default", "prod")
    name = "ledger/orchestration/01MCC5RM000000000000000009.json"
    store.create(name, b"{}")
    path = ctx.store.root.joinpath(*f"default/prod/{name}".split("/"))
    path.write_bytes(b"")
    _, _, malformed, _ = compact_workspace(ctx, "default", "prod", [name])
    assert malformed == 1
