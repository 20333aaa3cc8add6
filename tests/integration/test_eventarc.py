"""The Eventarc stand-in against a real fake-gcs-server: finalize notifications become CloudEvents."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from cloudevents.http import from_http
from flask import Flask, request
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[attr-defined]
from servo.dev.eventarc import FINALIZED, EventarcBridge
from servo.dev.fake_gcs import FakeGcsServer
from werkzeug.serving import BaseWSGIServer, make_server

pytestmark = pytest.mark.emulator

BUCKET = "evt-bucket"


@dataclass
class Receiver:
    """A CloudEvent endpoint that answers 500 to the first ``fail_first`` deliveries."""

    fail_first: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Flask:
        app = Flask("receiver")

        @app.post("/")
        def receive() -> tuple[str, int]:
            with self.lock:
                self.calls += 1
                if self.calls <= self.fail_first:
                    return "not yet", 500
                self.received.append((dict(request.headers), request.get_data()))
            return "", 204

        return app


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    server: BaseWSGIServer = make_server("127.0.0.1", 0, rec.app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def _wait(pred: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def _stack(url: str) -> tuple[EventarcBridge, FakeGcsServer]:
    bridge = EventarcBridge(url).start()
    gcs = FakeGcsServer(
        extra_args=["-event.pubsub-project-id", "p", "-event.pubsub-topic", "t", "-event.list", "finalize"],
        env={"PUBSUB_EMULATOR_HOST": bridge.address},
    ).start()
    gcs.create_bucket(BUCKET)
    return bridge, gcs


def _upload(gcs: FakeGcsServer, name: str, data: bytes) -> None:
    client = storage.Client(
        project="p", credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs.endpoint}
    )
    client.bucket(BUCKET).blob(name).upload_from_string(data, content_type="application/json")


def test_a_ledger_finalize_becomes_a_binary_cloud_event(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    bridge, gcs = _stack(url)
    try:
        name = "t1/ws1/ledger/orchestration/01J00000000000000000000000.json"
        _upload(gcs, name, b'{"x":1}')
        _upload(gcs, "t1/ws1/manifests/m.json", b"{}")  # filtered out: not a ledger object
        _wait(lambda: len(rec.received) >= 1)
        assert bridge.wait_idle(5)
        time.sleep(0.2)
        assert len(rec.received) == 1
        headers, body = rec.received[0]
        event = from_http(headers, body)
        assert event["type"] == FINALIZED
        assert event["source"] == f"//storage.googleapis.com/projects/_/buckets/{BUCKET}"
        assert event["subject"] == f"objects/{name}"
        assert event["specversion"] == "1.0" and event["id"] and event["time"]
        assert event.data["name"] == name and event.data["bucket"] == BUCKET
    finally:
        gcs.stop()
        bridge.stop()


def test_a_failed_delivery_is_retried_until_acknowledged(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    rec.fail_first = 2
    bridge, gcs = _stack(url)
    try:
        _upload(gcs, "t1/ws1/ledger/orchestration/01J00000000000000000000001.json", b"{}")
        # The bridge counts a delivery once the receiver's answer is back, just after the receiver
        # recorded the request: wait for both.
        _wait(lambda: len(rec.received) == 1 and bridge.delivered == 1)
        assert rec.calls == 3 and bridge.delivered == 1 and bridge.dropped == 0
    finally:
        gcs.stop()
        bridge.stop()


def test_delivery_gives_up_after_bounded_attempts() -> None:
    bridge = EventarcBridge("http://127.0.0.1:9/", max_attempts=3, backoff_s=0.01).start()
    gcs = FakeGcsServer(
        extra_args=["-event.pubsub-project-id", "p", "-event.pubsub-topic", "t"],
        env={"PUBSUB_EMULATOR_HOST": bridge.address},
    ).start()
    try:
        gcs.create_bucket(BUCKET)
        _upload(gcs, "t1/ws1/ledger/orchestration/01J00000000000000000000002.json", b"{}")
        _wait(lambda: bridge.dropped == 1)
        assert bridge.delivered == 0
    finally:
        gcs.stop()
        bridge.stop()
