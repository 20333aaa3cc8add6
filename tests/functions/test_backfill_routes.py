"""The automation function's backfill routes through functions-framework's test client (B1, B2, B6, B7)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from servo.core.canonical_json import canonical_bytes
from servo.http.runtime import override_context
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest

from tests.support.context import make_context

ROOT = Path(__file__).resolve().parents[2]
BASE = "/v1/workspaces/prod/backfills"
DAY = {"name": "date", "kind": "time", "granularity": "day", "start": "2025-01-01"}
BODY = {
    "assets": ["ns.a"],
    "partitions": {"range": {"start": "2025-01-01", "end": "2025-01-04"}},
    "chunkSize": 1,
}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Any, ServiceContext]]:
    ctx, _, _ = make_context(tmp_path)
    assets = [{"key": "ns.a", "id": "id-a", "partitioning": {"dimensions": [DAY]}}]
    body = {"manifestVersion": "1.0", "codeVersionId": "cv1", "assets": assets}
    deploy_manifest(ctx, "default", "prod", canonical_bytes(body), None)
    with override_context(ctx):
        yield create_app("automation", str(ROOT / "functions/automation/main.py")).test_client(), ctx


def test_create_replay_conflict_and_bad_input(env: tuple[Any, ServiceContext]) -> None:
    client, _ = env
    missing = client.post(BASE, json=BODY)
    assert missing.status_code == 400 and "Idempotency-Key" in missing.get_json()["message"]
    made = client.post(BASE, json=BODY, headers={"Idempotency-Key": "jan"})
    assert made.status_code == 201
    again = client.post(BASE, json=BODY, headers={"Idempotency-Key": "jan"})
    assert again.status_code == 200 and again.get_json() == {**made.get_json(), "created": False}
    other = client.post(BASE, json={**BODY, "chunkSize": 2}, headers={"Idempotency-Key": "jan"})
    assert (
        other.status_code == 409 and other.get_json()["details"]["conflictType"] == "IDEMPOTENCY_KEY_REUSED"
    )
    late = {**BODY, "partitions": {"range": {"start": "2025-01-04", "end": "2025-01-01"}}}
    bad = client.post(BASE, json=late, headers={"Idempotency-Key": "feb"})
    assert bad.status_code == 400 and bad.get_json()["details"]["field"].startswith("partitions")


def test_show_list_chunks_and_moves(env: tuple[Any, ServiceContext]) -> None:
    client, _ = env
    bf = client.post(
        BASE, json={**BODY, "maxConcurrentRuns": 1}, headers={"Idempotency-Key": "jan"}
    ).get_json()["backfillId"]
    shown = client.get(f"{BASE}/{bf}").get_json()
    assert shown["state"] == "RUNNING" and shown["totalPartitions"] == 4
    assert shown["partitionCounts"]["running"] == 1
    assert [
        b["backfillId"] for b in client.get(BASE, query_string={"state": "RUNNING"}).get_json()["backfills"]
    ] == [bf]
    assert client.get(BASE, query_string={"state": "NOPE"}).status_code == 400
    page = client.get(f"{BASE}/{bf}/chunks", query_string={"limit": 3}).get_json()
    assert [c["index"] for c in page["chunks"]] == [0, 1, 2] and "nextCursor" in page
    rest = client.get(f"{BASE}/{bf}/chunks", query_string={"cursor": page["nextCursor"]}).get_json()
    assert [c["index"] for c in rest["chunks"]] == [3]
    paused = client.post(f"{BASE}/{bf}/pause", json={"expectedStateVersion": 2})
    assert paused.status_code == 202 and paused.get_json()["stateVersion"] == 3
    assert client.post(f"{BASE}/{bf}/pause").get_json()["changed"] is False
    stale = client.post(f"{BASE}/{bf}/resume", json={"expectedStateVersion": 2})
    assert stale.status_code == 409 and stale.get_json()["details"]["conflictType"] == "VERSION_CONFLICT"
    assert client.post(f"{BASE}/{bf}/cancel").status_code == 202
    assert client.post(f"{BASE}/{bf}/resume").get_json()["details"]["conflictType"] == "ILLEGAL_TRANSITION"
    assert client.get(f"{BASE}/bf_{'a' * 26}").status_code == 404
