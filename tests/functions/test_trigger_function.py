"""TriggerRun through the trigger function: user-surface §6 scenarios 1–8 and 14, behavior §11 36–40."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from servo.core.ids import run_key_object_name
from servo.http.runtime import override_context
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context

ROOT = Path(__file__).resolve().parents[2]
WS = "prod"


@pytest.fixture
def ctx(tmp_path: Path) -> ServiceContext:
    ctx, _, _ = make_context(tmp_path)
    body = manifest(
        asset("ns.a"),
        asset("ns.b", "ns.a"),
        asset("ns.c", "ns.b"),
        asset("shop.orders"),
        asset("shop.users"),
    )
    status, _ = deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)
    assert status == 201
    return ctx


@pytest.fixture
def client(ctx: ServiceContext) -> Iterator[Any]:
    with override_context(ctx):
        yield create_app("trigger", str(ROOT / "functions/trigger/main.py")).test_client()


def trigger(client: Any, body: dict[str, Any], **headers: str) -> Any:
    return client.post(f"/v1/workspaces/{WS}/runs", json=body, headers=headers)


def planned_tasks(ctx: ServiceContext, run_id: str) -> list[str]:
    from servo.services.runs import load_run

    view = load_run(ctx, "default", WS, run_id)
    assert view is not None
    return sorted(view.tasks)


def test_selection_of_two_assets_plans_exactly_those_with_task_key_equal_asset_key(
    client: Any, ctx: ServiceContext
) -> None:
    res = trigger(client, {"selection": ["shop.users", "shop.orders"]})
    assert res.status_code == 201
    body = res.get_json()
    assert body["created"] is True and body["state"] == "PENDING" and body["planId"]
    assert planned_tasks(ctx, body["runId"]) == ["shop.orders", "shop.users"]


def test_selecting_a_root_never_plans_its_downstream(client: Any, ctx: ServiceContext) -> None:
    run = trigger(client, {"selection": ["ns.a"]}).get_json()
    assert planned_tasks(ctx, run["runId"]) == ["ns.a"]
    run = trigger(client, {"selection": ["ns.a"], "includeDownstream": True}).get_json()
    assert planned_tasks(ctx, run["runId"]) == ["ns.a", "ns.b", "ns.c"]
    run = trigger(client, {"selection": ["ns/c"], "includeUpstream": True}).get_json()
    assert planned_tasks(ctx, run["runId"]) == ["ns.a", "ns.b", "ns.c"]


@pytest.mark.parametrize(
    ("selection", "fragment"),
    [
        (["users..daily"], "invalid selection"),
        (["analytics/"], "invalid selection"),
        (["ns.nope"], "unknown asset keys: ns.nope"),
        ([], "at least one asset"),
    ],
)
def test_bad_selection_is_400(client: Any, selection: list[str], fragment: str) -> None:
    res = trigger(client, {"selection": selection})
    assert res.status_code == 400 and fragment in res.get_json()["message"]


def test_reserved_labels_are_rejected(client: Any) -> None:
    res = trigger(client, {"selection": ["ns.a"], "labels": {"servo.parent_run_id": "x"}})
    assert res.status_code == 400 and "reserved" in res.get_json()["message"]


def test_run_key_replay_in_any_selection_order_returns_the_same_run(client: Any) -> None:
    first = trigger(client, {"selection": ["shop.orders", "shop.users"], "runKey": "rk-1"})
    again = trigger(client, {"selection": ["shop.users", "shop.orders"], "runKey": "rk-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    a, b = first.get_json(), again.get_json()
    assert (b["runId"], b["planId"], b["created"]) == (a["runId"], a["planId"], False)
    assert b["createdAt"] == a["createdAt"]


def test_run_key_with_another_payload_is_409_with_diagnostics(client: Any) -> None:
    first = trigger(client, {"selection": ["shop.orders"], "runKey": "rk-2"}).get_json()
    res = trigger(client, {"selection": ["shop.users"], "runKey": "rk-2"})
    assert res.status_code == 409
    body = res.get_json()
    assert body["code"] == "CONFLICT"
    assert body["message"] == (
        f"run_key 'rk-2' already reserved by run {first['runId']} with different trigger payload"
    )
    details = body["details"]
    assert details["conflictType"] == "RUN_KEY_FINGERPRINT_MISMATCH"
    assert (details["existingRunId"], details["existingPlanId"]) == (first["runId"], first["planId"])
    assert details["existingFingerprint"] != details["requestedFingerprint"]


def test_a_rejected_request_never_reserves_its_run_key(client: Any, ctx: ServiceContext) -> None:
    assert trigger(client, {"selection": ["ns.nope"], "runKey": "rk-3"}).status_code == 400
    store = ctx.workspace_store("default", WS)
    assert store.get(run_key_object_name("rk-3")) is None
    assert trigger(client, {"selection": ["ns.a"], "runKey": "rk-3"}).status_code == 201


def test_idempotency_key_header_acts_as_run_key_and_is_bounded(client: Any) -> None:
    first = trigger(client, {"selection": ["ns.a"]}, **{"Idempotency-Key": "idem-1"})
    again = trigger(client, {"selection": ["ns.a"]}, **{"Idempotency-Key": "idem-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["runId"] == again.get_json()["runId"]
    assert trigger(client, {"selection": ["ns.a"]}, **{"Idempotency-Key": "k" * 257}).status_code == 400


def test_no_manifest_is_400(tmp_path: Path) -> None:
    ctx, _, _ = make_context(tmp_path)
    with override_context(ctx):
        client = create_app("trigger", str(ROOT / "functions/trigger/main.py")).test_client()
        res = trigger(client, {"selection": ["ns.a"]})
    assert res.status_code == 400 and "no manifest" in res.get_json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"selection": "ns.a"},
        {"selection": ["ns.a"], "includeUpstream": "yes"},
        {"selection": ["ns.a"], "partitionKey": "date=d:2025-01-15"},
        {"selection": ["ns.a"], "partitionKey": "n=i:007"},
        {"selection": ["ns.a"], "labels": {"k": 1}},
        {"selection": ["ns.a"], "timeoutSeconds": 0},
    ],
)
def test_malformed_requests_are_400_and_write_nothing(client: Any, ctx: ServiceContext, body: Any) -> None:
    before = ctx.workspace_store("default", WS).list("ledger/")
    assert trigger(client, body).status_code == 400
    assert ctx.workspace_store("default", WS).list("ledger/") == before


def test_non_json_body_is_400(client: Any) -> None:
    res = client.post(f"/v1/workspaces/{WS}/runs", data=b"nope", content_type="application/json")
    assert res.status_code == 400
