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
