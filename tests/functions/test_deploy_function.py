"""The deploy function through functions-framework's test client (the real entry point)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from servo.core.canonical_json import canonical_bytes
from servo.http.runtime import override_context

from tests.support.context import make_context

ROOT = Path(__file__).resolve().parents[2]


def manifest(*assets: dict[str, Any], code_version: str = "cv1") -> dict[str, Any]:
    return {"manifestVersion": "1.0", "codeVersionId": code_version, "assets": list(assets)}


def asset(key: str, *deps: str, **execution: int) -> dict[str, Any]:
    ns, name = key.split(".", 1)
    return {
        "key": {"namespace": ns, "name": name},
        "id": f"id-{key}",
        "dependencies": [{"upstreamKey": d} for d in deps],
        "execution": execution or {"maxRetries": 2},
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    ctx, _, _ = make_context(tmp_path)
    with override_context(ctx):
        yield create_app("deploy", str(ROOT / "functions/deploy/main.py")).test_client()


def post(client: Any, body: Any, key: str | None = None, ws: str = "prod") -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(f"/v1/workspaces/{ws}/manifests", data=data, headers=headers)


def test_deploy_stores_the_manifest_and_points_current_at_it(client: Any) -> None:
    res = post(client, manifest(asset("ns.a"), asset("ns.b", "ns.a")))
    assert res.status_code == 201
    body = res.get_json()
    assert body["assetCount"] == 2 and body["workspaceId"] == "prod"
    assert body["fingerprint"].startswith("sha256:")
    current = client.get("/v1/workspaces/prod/manifests/current")
    assert current.status_code == 200
    assert current.get_json()["manifestId"] == body["manifestId"]


def test_same_idempotency_key_and_payload_replays_201_as_200(client: Any) -> None:
    first = post(client, manifest(asset("ns.a")), key="k1")
    again = post(client, manifest(asset("ns.a")), key="k1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()


def test_same_idempotency_key_with_other_payload_is_409_and_changes_nothing(client: Any) -> None:
    first = post(client, manifest(asset("ns.a")), key="k1").get_json()
    res = post(client, manifest(asset("ns.b")), key="k1")
    assert res.status_code == 409 and res.get_json()["code"] == "CONFLICT"
    assert client.get("/v1/workspaces/prod/manifests/current").get_json()["manifestId"] == first["manifestId"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (manifest(asset("ns.a", "ns.b"), asset("ns.b", "ns.a")), "cycle"),
        (manifest(asset("ns.a", "ns.zzz")), "unknown assets: ns.zzz"),
        (manifest(asset("ns.a"), asset("ns.a")), "duplicate asset key ns.a"),
        (manifest(), "at least one asset"),
        ({"manifestVersion": "1.0", "assets": [asset("ns.a")]}, "codeVersionId"),
        (b"{not json", "not valid JSON"),
        (b'{"manifestVersion":"1.0","codeVersionId":"c","assets":[],"x":1.5}', "not valid JSON"),
        (manifest({"key": {"namespace": "Bad", "name": "x"}, "id": "i"}), "Bad"),
        (manifest(asset("ns.a", maxRetries=-1)), "maxRetries"),
    ],
)
def test_invalid_manifests_are_400_with_a_clear_message_and_store_nothing(
    client: Any, body: Any, fragment: str
) -> None:
    res = post(client, body)
    assert res.status_code == 400, res.get_json()
    payload = res.get_json()
    assert payload["code"] == "BAD_REQUEST" and fragment in payload["message"]
    assert payload["correlationId"]
    assert client.get("/v1/workspaces/prod/manifests/current").status_code == 404


def test_cycle_error_names_the_cycle(client: Any) -> None:
    res = post(client, manifest(asset("ns.a", "ns.c"), asset("ns.b", "ns.a"), asset("ns.c", "ns.b")))
    message = res.get_json()["message"]
    assert all(k in message for k in ("ns.a", "ns.b", "ns.c")) and "->" in message


def test_bad_workspace_in_path_is_400(client: Any) -> None:
    assert post(client, manifest(asset("ns.a")), ws="Bad..WS").status_code == 400


def test_routes_of_other_functions_are_not_served_here(client: Any) -> None:
    assert client.post("/v1/workspaces/prod/runs", json={"selection": ["ns.a"]}).status_code == 404


def test_wrong_method_is_405(client: Any) -> None:
    assert client.delete("/v1/workspaces/prod/manifests").status_code == 405


def test_manifest_bytes_are_canonical_when_stored(tmp_path: Path) -> None:
    ctx, _, _ = make_context(tmp_path)
    from servo.services.manifests import deploy_manifest, load_current_manifest

    status, body = deploy_manifest(ctx, "default", "prod", json.dumps(manifest(asset("ns.a"))).encode(), None)
    assert status == 201
    stored = ctx.workspace_store("default", "prod").get(f"manifests/{body['manifestId']}.json")
    assert stored is not None and stored.data == canonical_bytes(json.loads(stored.data))
    loaded = load_current_manifest(ctx, "default", "prod")
    assert loaded is not None and list(loaded.assets) == ["ns.a"]
