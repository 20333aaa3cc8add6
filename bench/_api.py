"""The public HTTP API as the bench drives it: deploy a graph built by the SDK, trigger, poll GetRun."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests
from servo import sdk

TENANT = "default"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})


class BenchError(RuntimeError):
    """A benchmark could not be measured (the stack answered wrongly or too late)."""


def deploy(http: requests.Session, api_url: str, ws: str, project: Path, namespace: str) -> int:
    """Deploy the assets of ``namespace`` to ``ws`` as the SDK builds the manifest; returns the count."""
    found = sdk.discover_assets(project, strict=True)
    assets = [fn for key, fn in found.items() if key.split(".", 1)[0] == namespace]
    ids = sdk.assign_asset_ids([key for key in found if key.split(".", 1)[0] == namespace], {})
    manifest = sdk.build_manifest(
        assets,
        tenant_id=TENANT,
        workspace_id=ws,
        code_version_id="bench",
        git=None,
        deployed_by="bench",
        deployed_at_ms=time.time_ns() // 1_000_000,
        asset_ids=ids,
        project_root=project,
    )
    res = http.post(
        f"{api_url}/v1/workspaces/{ws}/manifests",
        data=sdk.manifest_bytes(manifest),
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    if res.status_code not in (200, 201):
        raise BenchError(f"deploy to {ws} answered {res.status_code}: {res.text[:300]}")
    return len(assets)


def trigger(http: requests.Session, api_url: str, ws: str, root: str, downstream: bool) -> str:
    body = {"selection": [root], "includeDownstream": downstream}
    res = http.post(f"{api_url}/v1/workspaces/{ws}/runs", json=body, timeout=60)
    if res.status_code not in (200, 201):
        raise BenchError(f"trigger in {ws} answered {res.status_code}: {res.text[:300]}")
    run_id: str = res.json()["runId"]
    return run_id


def get_run(http: requests.Session, api_url: str, ws: str, run_id: str) -> dict[str, Any] | None:
    res = http.get(f"{api_url}/v1/workspaces/{ws}/runs/{run_id}", timeout=60)
    if res.status_code == 404:
        return None
    if res.status_code != 200:
        raise BenchError(f"GetRun {run_id} answered {res.status_code}: {res.text[:300]}")
    body: dict[str, Any] = res.json()
    return body


def wait_state(
    http: requests.Session, api_url: str, ws: str, run_id: str, timeout: float, every: float = 0.005
) -> tuple[dict[str, Any], float]:
    """Poll GetRun until the run is terminal; returns it and the perf_counter of that answer."""
    deadline = time.perf_counter() + timeout
    run: dict[str, Any] | None = None
    while time.perf_counter() < deadline:
        run = get_run(http, api_url, ws, run_id)
        seen = time.perf_counter()
        if run is not None and run.get("state") in TERMINAL:
            return run, seen
        time.sleep(every)
    state = None if run is None else run.get("state")
    raise BenchError(f"run {run_id} in {ws} not terminal after {timeout:.0f}s (state {state})")
