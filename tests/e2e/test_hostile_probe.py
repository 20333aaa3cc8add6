"""A black-box probe of `servo dev` as a real process, with what an attacker tried (issue 15).

Bad bodies on every route, a cross-site POST, internal routes without credentials, a hostile tenant
name followed by a sweep, a truncated ledger object and an oversized body. Bad input gets only 4xx,
the sweep 2xx, and no answer carries a machine path or a stack trace.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from servo.http.app import MAX_REQUEST_BYTES

from tests.e2e.test_m1_smoke import REPO, _free_port, _read_ready_line, servo_dev
from tests.fuzz.openapi import HOSTILE_JSON, operations

pytestmark = pytest.mark.e2e

API_TOKEN = "probe-api-token"
INTERNAL = {"X-Servo-Dispatch-Secret": "probe-internal-secret-0123456789"}
MANIFEST = {
    "manifestVersion": "1.0",
    "codeVersionId": "probe",
    "assets": [{"key": {"namespace": "demo", "name": "a"}, "id": "id-a", "dependencies": []}],
}


@dataclass
class Dev:
    api_url: str
    root: Path
    data_dir: Path
    http: requests.Session

    def send(self, method: str, path: str, **kw: Any) -> requests.Response:
        res = self.http.request(method, f"{self.api_url}{path}", timeout=60, **kw)
        text = res.text
        # Nothing the machine's layout or the code's insides: no path under the test's root, no trace.
        assert str(self.root) not in text and "Traceback" not in text, f"{method} {path}: {text[:300]}"
        return res


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    root = tmp_path_factory.mktemp("probe")
    project = root / "project"
    shutil.copytree(REPO / "examples" / "quickstart", project, ignore=shutil.ignore_patterns(".servo*"))
    data_dir = root / "data"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
    env.update(
        SERVO_API_TOKEN=API_TOKEN,
        SERVO_DISPATCH_SECRET=INTERNAL["X-Servo-Dispatch-Secret"],
        PYTHONUNBUFFERED="1",
    )
    with servo_dev(root, project, port, env) as proc:
        api_url = _read_ready_line(proc, 60)
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        probe = Dev(api_url, root, data_dir, http)
        deployed = probe.send("POST", "/v1/workspaces/default/manifests", json=MANIFEST)
        assert deployed.status_code == 201, deployed.text
        yield probe


def _run_count(dev: Dev) -> int:
    listed = dev.send("GET", "/v1/workspaces/default/runs")
    assert listed.status_code == 200, listed.text
    return len(listed.json()["runs"])


def _path(template: str) -> str:
    ids = {"ws": "default", "run_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "task_id": "demo.a"}
    for name, value in ids.items():
        template = template.replace(f"{{{name}}}", value)
    return template


def test_bad_bodies_on_every_route_get_only_4xx(dev: Dev) -> None:
    runs = _run_count(dev)
    hostile = list(HOSTILE_JSON.values())
    in_fields = [b'{"selection":[%s],"runKey":%s,"attempt":%s}' % (v, v, v) for v in hostile]
    sent = 0
    for op in operations():
        if op.body is None:
            continue
        headers = {"Content-Type": "application/json", **(INTERNAL if op.internal else {})}
        for raw in (*hostile, *in_fields):
            res = dev.send(op.method, _path(op.template), data=raw, headers=headers)
            assert 400 <= res.status_code < 500, f"{op.operation_id}: {res.status_code} {res.text[:300]}"
            sent += 1
    assert sent == 6 * len([op for op in operations() if op.body is not None])
    assert _run_count(dev) == runs


@pytest.mark.parametrize(
    "path",
    [
        "/v1/workspaces/default/runs?limit=" + "9" * 5000,
        "/v1/workspaces/default/runs?cursor=%ED%A0%80",
        "/v1/workspaces/default/runs/%ED%A0%80",
        "/v1/workspaces/default/runs/" + "1" * 5000 + "/logs",
        "/v1/workspaces/..%2F..%2Fetc/runs",
    ],
)
def test_bad_reads_get_only_4xx(dev: Dev, path: str) -> None:
    res = dev.send("GET", path)
    assert 400 <= res.status_code < 500, f"{res.status_code} {res.text[:300]}"


def test_cross_site_posts_are_refused(dev: Dev) -> None:
    runs = _run_count(dev)
    body = json.dumps({"selection": ["demo.a"]})
    for headers in (
        {"Content-Type": "text/plain", "Origin": "https://evil.example"},
        {"Content-Type": "application/json", "Origin": "https://evil.example"},
        {"Content-Type": "application/json", "Host": "evil.example"},
    ):
        res = dev.send("POST", "/v1/workspaces/default/runs", data=body, headers=headers)
        assert res.status_code in (403, 415), res.text
    assert _run_count(dev) == runs


def test_internal_routes_need_their_credential(dev: Dev) -> None:
    timer = {"tenantId": "acme", "workspaceId": "default", "timerId": "timer:cron:nightly:1800000005"}
    for route, body in (("sweep", {}), ("fire", timer)):
        for headers in ({}, {"X-Servo-Dispatch-Secret": "guess"}):
            res = dev.send("POST", f"/v1/timers/{route}", json=body, headers=headers)
            assert res.status_code == 401, res.text


def test_a_hostile_tenant_is_refused_and_the_sweep_goes_on(dev: Dev) -> None:
    hostile = {"X-Servo-Tenant": "_servo"}
    res = dev.send("POST", "/v1/workspaces/workspaces/manifests", json=MANIFEST, headers=hostile)
    assert res.status_code == 400, res.text
    # A ledger object truncated to nothing is skipped too, on every tick.
    ledger = dev.data_dir / "servo-local" / "default" / "default" / "ledger" / "orchestration"
    created = dev.send("POST", "/v1/workspaces/default/runs", json={"selection": ["demo.a"]})
    assert created.status_code == 201, created.text
    newest = sorted(ledger.glob("*.json"))[-1]
    newest.write_bytes(b"")
    for _ in range(2):
        swept = dev.send("POST", "/v1/timers/sweep", json={}, headers=INTERNAL)
        assert swept.status_code == 200, swept.text
        assert swept.json()["skipped"] == [] and "default/default" in swept.json()["workspaces"]


def test_an_oversized_body_is_413(dev: Dev) -> None:
    big = b'{"selection":["' + b"a" * MAX_REQUEST_BYTES + b'"]}'
    res = dev.send(
        "POST", "/v1/workspaces/default/runs", data=big, headers={"Content-Type": "application/json"}
    )
    assert res.status_code == 413, res.text[:300]
