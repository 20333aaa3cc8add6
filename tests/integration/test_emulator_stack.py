"""The emulator stack's mechanics: routing by the gateway's table; a failed start leaves nothing behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests
from servo.core.errors import ServoError
from servo.dev.emulators import EmulatorStack, run_emulator_stack
from servo.dev.router import Router
from servo.http.routes import FUNCTIONS


def test_the_router_sends_each_path_to_the_function_the_route_table_names() -> None:
    router = Router({name: f"http://127.0.0.1:{9000 + i}" for i, name in enumerate(FUNCTIONS)})
    try:
        url = {name: f"http://127.0.0.1:{9000 + i}" for i, name in enumerate(FUNCTIONS)}
        assert router.target_for("POST", "/v1/workspaces/ws/manifests") == url["deploy"]
        assert router.target_for("POST", "/v1/workspaces/ws/runs") == url["trigger"]
        assert router.target_for("GET", "/v1/workspaces/ws/runs/r1") == url["runs"]
        assert router.target_for("POST", "/v1/workspaces/ws/runs/r1/cancel") == url["cancel"]
        assert router.target_for("POST", "/api/v1/tasks/ct1_x/heartbeat") == url["callback"]
        assert router.target_for("POST", "/v1/timers/sweep") == url["timers"]
        # Wrong method: the owning function answers 405 in the API's error shape.
        assert router.target_for("DELETE", "/v1/workspaces/ws/runs") in (url["trigger"], url["runs"])
        assert router.target_for("GET", "/nowhere") == url["runs"]
    finally:
        router.stop()


def _port_open(host_port: str) -> bool:
    host, port = host_port.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.emulator
def test_a_failed_start_stops_every_part_already_started(tmp_path: Path) -> None:
    (tmp_path / "functions").mkdir()
    stack = EmulatorStack(data_dir=tmp_path / "data", port=0, functions_dir=tmp_path / "functions")

    with pytest.raises(ServoError, match="has no entry point"):
        stack.start()

    assert stack.tasks_emulator_host is not None and not _port_open(stack.tasks_emulator_host)
    assert stack._gcs is not None and stack._gcs.pid is None
    assert not _port_open(stack.bridge.address)


def _one_asset_manifest(namespace: str) -> dict[str, object]:
    """A deploy body with the one asset ``{namespace}.a``."""
    key = {"namespace": namespace, "name": "a"}
    return {
        "manifestVersion": "1.0",
        "codeVersionId": "cv1",
        "assets": [{"key": key, "id": f"id-{namespace}.a", "dependencies": []}],
    }


@pytest.mark.emulator
def test_the_filesystem_backend_keeps_the_bucket_under_the_data_dir(tmp_path: Path) -> None:
    manifest = _one_asset_manifest("fs")
    with run_emulator_stack(None, tmp_path, 0, sweep_interval_s=0, storage_backend="filesystem") as stack:
        created = requests.post(f"{stack.api_url}/v1/workspaces/fsws/manifests", json=manifest, timeout=30)
        assert created.status_code in (200, 201), created.text
        current = requests.get(f"{stack.api_url}/v1/workspaces/fsws/manifests/current", timeout=30)
        assert current.status_code == 200 and "fs" in current.text

    stored = [p for p in (tmp_path / "gcs").rglob("*") if p.is_file()]
    assert any("fsws" in str(p) for p in stored), stored


@pytest.mark.emulator
def test_the_sweep_kicks_the_compactor_as_the_deployment_does(tmp_path: Path) -> None:
    # Terraform gives the dispatchers SERVO_SWEEP_KICKS=1 (only the compactor writes state/); the
    # emulator stack is the GCP code path, so its sweep kicks too instead of compacting in the timers
    # function (which, under load, outlasted the scheduler's 60-s request there).
    from servo.store.gcs import gcs_store_from_env

    manifest = _one_asset_manifest("k")
    with run_emulator_stack(None, tmp_path, 0, sweep_interval_s=0) as stack:
        assert stack.function_env()["SERVO_SWEEP_KICKS"] == "1"
        api = f"{stack.api_url}/v1/workspaces/kws"
        assert requests.post(f"{api}/manifests", json=manifest, timeout=30).status_code in (200, 201)
        assert requests.post(f"{api}/runs", json={"selection": ["k.a"]}, timeout=30).status_code == 201
        swept = requests.post(
            f"{stack.api_url}/v1/timers/sweep", json={}, headers=stack.scheduler_headers(), timeout=60
        )
        assert swept.status_code == 200, swept.text
        assert swept.json()["workspaces"]["default/kws"]["eventsCompacted"] == 0
        store = gcs_store_from_env(stack.bucket, stack.storage_endpoint)
        assert store.list("default/kws/ledger/kicks/"), "the sweep wrote no kick"


@pytest.mark.emulator
def test_a_function_whose_port_was_taken_starts_again_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stack chooses a function's port, then starts much else before the function binds it; an
    # outgoing connection can take it meanwhile (seen once in a full test run). The stack starts that
    # function again on another port, and routes and delivers to it there.
    from servo.dev import emulators

    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    assert FUNCTIONS[0] == "deploy"  # the stack chooses the functions' ports first, in this order
    ports = iter([taken.getsockname()[1]])
    real = emulators.free_port
    monkeypatch.setattr(emulators, "free_port", lambda: next(ports, None) or real())
    manifest = _one_asset_manifest("p")
    try:
        with run_emulator_stack(None, tmp_path, 0, sweep_interval_s=0) as stack:
            assert not stack.function_urls["deploy"].endswith(f":{taken.getsockname()[1]}")
            api = f"{stack.api_url}/v1/workspaces/pws"
            assert requests.post(f"{api}/manifests", json=manifest, timeout=30).status_code in (200, 201)
    finally:
        taken.close()
