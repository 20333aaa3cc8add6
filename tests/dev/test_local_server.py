"""The local server of ``servo dev`` against hostile clients: other web pages, huge bodies, stalled uploads.

Any web page a developer opens can send requests to ``127.0.0.1``: a ``text/plain`` POST needs no CORS
preflight, and DNS rebinding makes a foreign name resolve to the loopback address. Each was shown to
create runs; a 100 MB body was buffered whole; 400 stalled uploads held 421 threads.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from servo.dev.embedded import EmbeddedStack
from servo.http.app import MAX_REQUEST_BYTES

MANIFEST = {
    "manifestVersion": "1.0",
    "codeVersionId": "cv1",
    "assets": [{"key": {"namespace": "ns", "name": "a"}, "id": "id-a", "dependencies": []}],
}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(
        data_dir=tmp_path / "data",
        worker_url="http://127.0.0.1:9/dispatch",
        sweep_interval_s=0,
        max_connections=8,
        connection_timeout_s=1.0,
    ) as running:
        answer = requests.post(f"{running.api_url}/v1/workspaces/prod/manifests", json=MANIFEST, timeout=10)
        assert answer.status_code == 201, answer.text
        yield running


def _runs(stack: EmbeddedStack) -> list[str]:
    assert stack.ctx is not None
    return [m.name for m in stack.ctx.store.list("default/prod/run_keys/")] + [
        m.name for m in stack.ctx.store.list("default/prod/ledger/")
    ]


HOSTILE = [
    ({"Content-Type": "text/plain", "Origin": "https://evil.example"}, 403),
    ({"Content-Type": "application/json", "Origin": "https://evil.example"}, 403),
    ({"Content-Type": "application/json", "Origin": "null"}, 403),
    ({"Content-Type": "text/plain"}, 415),
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ({}, 415),
    ({"Content-Type": "application/json", "Host": "evil.example"}, 403),  # DNS rebinding
]


@pytest.mark.parametrize(("headers", "status"), HOSTILE)
def test_cross_site_posts_are_refused_and_create_nothing(
    stack: EmbeddedStack, headers: dict[str, str], status: int
) -> None:
    before = _runs(stack)
    body = json.dumps({"selection": ["ns.a"]})
    res = requests.post(f"{stack.api_url}/v1/workspaces/prod/runs", data=body, headers=headers, timeout=10)
    assert res.status_code == status, res.text
    assert res.json()["code"] in ("FORBIDDEN", "UNSUPPORTED_MEDIA_TYPE")
    assert _runs(stack) == before


@pytest.mark.parametrize(("headers", "status"), HOSTILE)
def test_a_request_handed_over_in_process_meets_the_same_refusals(
    stack: EmbeddedStack, headers: dict[str, str], status: int
) -> None:
    """The stack's transport serves its API in process (servo dev's worker reports through it): the
    checks of the local server apply there too, answered the same."""
    assert stack.transport is not None and stack.transport.serves(stack.api_url)
    before = _runs(stack)
    body = json.dumps({"selection": ["ns.a"]}).encode()
    url = f"{stack.api_url}/v1/workspaces/prod/runs"
    reply = stack.transport.deliver("POST", url, headers, body, timeout_s=10)
    over_http = requests.post(url, data=body, headers=headers, timeout=10)
    assert (reply.status, reply.json_object()["code"]) == (over_http.status_code, over_http.json()["code"])
    assert reply.status == status
    assert _runs(stack) == before


def test_a_body_above_the_limit_handed_over_in_process_is_413_too(stack: EmbeddedStack) -> None:
    assert stack.transport is not None
    big = b'{"selection":["' + b"a" * MAX_REQUEST_BYTES + b'"]}'
    reply = stack.transport.deliver(
        "POST", f"{stack.api_url}/v1/workspaces/prod/runs", JSON, big, timeout_s=60
    )
    assert reply.status == 413
    assert reply.json_object()["code"] == "PAYLOAD_TOO_LARGE"
    assert _runs(stack) == []
    # Within the limit, the same request is served in process.
    ok = stack.transport.deliver(
        "POST", f"{stack.api_url}/v1/workspaces/prod/runs", JSON, b'{"selection":["ns.a"]}', timeout_s=10
    )
    assert ok.status == 201, ok.body


def test_a_write_without_a_body_needs_no_content_type(stack: EmbeddedStack) -> None:
    res = requests.post(f"{stack.api_url}/v1/workspaces/prod/runs/nope/cancel", timeout=10)
    assert res.status_code == 404, res.text


def test_a_rebound_host_cannot_read_either(stack: EmbeddedStack) -> None:
    res = requests.get(
        f"{stack.api_url}/v1/workspaces/prod/runs", headers={"Host": "evil.example"}, timeout=10
    )
    assert res.status_code == 403


def test_same_origin_and_originless_requests_are_served(stack: EmbeddedStack) -> None:
    url = f"{stack.api_url}/v1/workspaces/prod/runs"
    port = stack.api_url.rsplit(":", 1)[1]
    for origin in (None, stack.api_url, f"http://localhost:{port}"):
        headers = {**JSON, "Host": f"localhost:{port}"} if origin and "localhost" in origin else dict(JSON)
        if origin:
            headers["Origin"] = origin
        res = requests.post(url, json={"selection": ["ns.a"]}, headers=headers, timeout=10)
        assert res.status_code == 201, (origin, res.text)


def test_a_body_above_the_limit_is_413_whether_its_length_is_declared_or_not(stack: EmbeddedStack) -> None:
    url = f"{stack.api_url}/v1/workspaces/prod/runs"
    big = b'{"selection":["' + b"a" * MAX_REQUEST_BYTES + b'"]}'
    declared = requests.post(url, data=big, headers=JSON, timeout=60)
    assert declared.status_code == 413, declared.text[:200]
    assert declared.json()["code"] == "PAYLOAD_TOO_LARGE"

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 1 << 20):
            yield big[start : start + (1 << 20)]

    chunked = requests.post(url, data=chunks(), headers=JSON, timeout=60)
    assert chunked.status_code == 413, chunked.text[:200]
    assert _runs(stack) == []


def _stall(url: str) -> socket.socket:
    """A connection that declares a body and never sends it."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    conn.sendall(
        b"POST /v1/workspaces/prod/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    return conn


def test_stalled_uploads_hold_a_bounded_number_of_threads_and_time_out(stack: EmbeddedStack) -> None:
    baseline = threading.active_count()
    stalled = [_stall(stack.api_url) for _ in range(40)]
    try:
        # Past the cap, a connection is refused at once instead of getting a thread of its own.
        assert threading.active_count() <= baseline + 8
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                res = requests.get(f"{stack.api_url}/v1/workspaces/prod/runs", timeout=5)
            except requests.RequestException:  # queued behind the stalled ones, or refused while full
                res = None
            if res is not None and res.status_code == 200:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the server never answered again once the stalled uploads timed out")
        assert threading.active_count() <= baseline + 8
    finally:
        for conn in stalled:
            conn.close()


def test_the_emulator_gateway_refuses_the_same_before_forwarding_anything() -> None:
    from servo.dev.router import Router

    # Its functions are unreachable: whatever is refused here was refused by the gateway itself.
    with Router({"runs": "http://127.0.0.1:9", "trigger": "http://127.0.0.1:9"}) as router:
        url = f"{router.url}/v1/workspaces/prod/runs"
        body = json.dumps({"selection": ["ns.a"]})
        foreign = {"Content-Type": "text/plain", "Origin": "https://evil.example"}
        assert requests.post(url, data=body, headers=foreign, timeout=10).status_code == 403
        assert (
            requests.post(url, data=body, headers={"Content-Type": "text/plain"}, timeout=10).status_code
            == 415
        )
        rebound = requests.get(url, headers={"Host": "evil.example"}, timeout=10)
        assert rebound.status_code == 403
        big = b"x" * (MAX_REQUEST_BYTES + 1)
        assert requests.post(url, data=big, headers=JSON, timeout=60).status_code == 413
        assert requests.post(url, data=body, headers=JSON, timeout=10).status_code == 503  # forwarded


def test_the_router_is_the_local_api_itself_with_no_web_framework_between(tmp_path: Path) -> None:
    """Every request to ``servo dev``'s API ran Flask's request context, URL map and session code
    around a single catch-all view: a WSGI call of LocalApi answers the same (tests/http)."""
    from servo.dev.embedded import router_app
    from servo.dev.local_api import LocalApi

    app = router_app(lambda: None)  # type: ignore[arg-type, return-value]
    assert isinstance(app, LocalApi)
    res = app.test_client().head("/healthz")
    assert (res.status_code, res.headers["Content-Length"], res.data) == (200, "16", b"")
