"""The launcher itself: starts, answers, creates buckets, passes flags through, and always cleans up."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from servo.core.errors import ServoError
from servo.dev.fake_gcs import FakeGcsServer

pytestmark = pytest.mark.emulator


def _buckets(endpoint: str) -> list[str]:
    with urllib.request.urlopen(f"{endpoint}/storage/v1/b?project=servo-local", timeout=5) as resp:
        return [b["name"] for b in json.load(resp).get("items", [])]


def test_session_server_creates_buckets_idempotently(fake_gcs: FakeGcsServer) -> None:
    assert fake_gcs.endpoint.startswith("http://127.0.0.1:")
    fake_gcs.create_bucket("launcher-test")
    fake_gcs.create_bucket("launcher-test")
    assert "launcher-test" in _buckets(fake_gcs.endpoint)


def test_process_is_killed_on_exit_even_after_an_error() -> None:
    with pytest.raises(RuntimeError), FakeGcsServer() as server:
        assert server.pid is not None
        pid: int = server.pid
        assert _buckets(server.endpoint) == []
        raise RuntimeError("test body failed")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: the pid is gone
    with pytest.raises(ServoError):
        _ = server.endpoint


def test_bad_flags_surface_the_server_output(monkeypatch: pytest.MonkeyPatch) -> None:
    # Notifications without PUBSUB_EMULATOR_HOST make fake-gcs-server exit at start (local-stack.md).
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    server = FakeGcsServer(extra_args=["-event.pubsub-project-id", "p", "-event.pubsub-topic", "t"])
    with pytest.raises(ServoError, match="did not start: exited with") as info:
        server.start()
    assert "pubsub" in str(info.value).lower()
    assert server.pid is None
