"""The bench's wire-level GCS counter: what it passes through and how it bills each request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from servo.dev.fake_gcs import FakeGcsServer
from servo.store.gcs import gcs_store_from_env

from bench._gcs_proxy import CountingGcsProxy, classify
from tests.support.fake_gcs import fake_gcs, fresh_bucket

__all__ = ["fake_gcs"]


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/storage/v1/b/bk/o", "prefix=t%2Fw%2Fledger%2F", ("list", "t/w/ledger/")),
        ("GET", "/download/storage/v1/b/bk/o/t%2Fw%2Fl%2Fx.json", "alt=media", ("read", "t/w/l/x.json")),
        ("GET", "/storage/v1/b/bk/o/t%2Fw%2Flogs%2Fa.log", "", ("read", "t/w/logs/a.log")),
        ("DELETE", "/storage/v1/b/bk/o/t%2Fw%2Fa", "", ("write", "t/w/a")),
        ("POST", "/upload/storage/v1/b/bk/o", "uploadType=media&name=t%2Fw%2Fa", ("write", "t/w/a")),
        ("GET", "/storage/v1/b/bk", "", None),
    ],
)
def test_requests_are_billed_as_gcs_bills_them(
    method: str, path: str, query: str, expected: tuple[str, str] | None
) -> None:
    assert classify(method, path, query) == expected


def test_a_multipart_upload_is_named_by_its_metadata_part() -> None:
    meta = b'{"name": "t/w/ledger/x.json"}'
    body = b"--b\r\ncontent-type: application/json\r\n\r\n" + meta + b"\r\n--b\r\n\r\n{}\r\n--b--"
    assert classify("POST", "/upload/storage/v1/b/bk/o", "uploadType=multipart", body) == (
        "write",
        "t/w/ledger/x.json",
    )


@pytest.fixture
def proxied(fake_gcs: FakeGcsServer) -> Iterator[tuple[CountingGcsProxy, Any]]:
    """The proxy in front of fake-gcs-server, and a store on a fresh bucket that talks through it."""
    proxy = CountingGcsProxy().start()
    try:
        proxy.set_upstream(fake_gcs.endpoint)
        yield proxy, gcs_store_from_env(fresh_bucket(fake_gcs), proxy.host)
    finally:
        proxy.stop()


def test_the_store_works_through_the_proxy_and_every_operation_is_counted(
    proxied: tuple[CountingGcsProxy, Any],
) -> None:
    proxy, store = proxied
    store.create("t/w/ledger/a.json", b"{}")
    assert store.get("t/w/ledger/a.json").data == b"{}"
    assert [m.name for m in store.list("t/w/ledger/")] == ["t/w/ledger/a.json"]
    ops = proxy.snapshot()
    assert ops[("ledger", "write")] == 1 and ops[("ledger", "list")] == 1
    assert ops[("ledger", "read")] >= 1
    assert sum(ops.values()) <= proxy.request_count()


def test_ledger_uploads_are_tallied_by_event_type(proxied: tuple[CountingGcsProxy, Any]) -> None:
    # Which events a run wrote, and how often, is what explains a ledger write count above four a task.
    proxy, store = proxied
    store.create("t/w/ledger/orchestration/a.json", b'{"event_type":"TaskStarted","x":1}')
    store.create("t/w/ledger/orchestration/b.json", b'{"event_type":"TaskStarted","x":2}')
    store.create("t/w/logs/r/t/attempt-1.log", b'{"event_type":"NotAnEvent"}')
    assert proxy.ledger_snapshot() == {"TaskStarted": 2}
    proxy.reset()
    assert proxy.ledger_snapshot() == {}
