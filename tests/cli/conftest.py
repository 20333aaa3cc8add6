"""A real embedded control plane for the CLI tests (no mocked HTTP layer) and a clean environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result
from servo.cli import cli
from servo.dev.embedded import EmbeddedStack

SERVO_ENV = ("SERVO_API_URL", "SERVO_WORKSPACE", "SERVO_TENANT", "SERVO_TOKEN")


def manifest_asset(
    name: str, deps: tuple[str, ...] = (), dims: list[dict[str, Any]] | None = None, namespace: str = "demo"
) -> dict[str, Any]:
    """One asset of a deployed manifest, in the server-side shape."""
    return {
        "key": {"namespace": namespace, "name": name},
        "id": f"id-{name}",
        "dependencies": [{"upstreamKey": d, "parameterName": d, "mapping": "identity"} for d in deps],
        "execution": {"maxRetries": 0},
        "partitioning": {"isPartitioned": bool(dims), "dimensions": dims or []},
    }


# The server-side shape of a deployed graph: A -> B -> C plus a daily- and a static-partitioned asset.
MANIFEST = {
    "manifestVersion": "1.0",
    "codeVersionId": "cv-test",
    "assets": [
        manifest_asset("a"),
        manifest_asset("b", ("demo.a",)),
        manifest_asset("c", ("demo.b",)),
        manifest_asset("daily", dims=[{"name": "date", "kind": "time", "granularity": "day"}]),
        manifest_asset("regional", dims=[{"name": "region", "kind": "static", "values": ["eu", "us"]}]),
    ],
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SERVO_ENV:
        monkeypatch.delenv(name, raising=False)
    # No servo.toml above the working directory may leak into a test.
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    # No worker: dispatches go to a closed port, so runs stay queued; the CLI only needs the API.
    with EmbeddedStack(
        data_dir=tmp_path / "data", port=0, worker_url="http://127.0.0.1:9/dispatch", sweep_interval_s=0
    ) as running:
        yield running


def deploy_manifest(stack: EmbeddedStack, manifest: dict[str, Any]) -> EmbeddedStack:
    answer = requests.post(f"{stack.api_url}/v1/workspaces/default/manifests", json=manifest, timeout=10)
    assert answer.status_code == 201, answer.text
    return stack


@pytest.fixture
def deployed(stack: EmbeddedStack) -> EmbeddedStack:
    return deploy_manifest(stack, MANIFEST)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
