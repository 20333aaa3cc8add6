"""The worker's callback client over both transports: a 5xx or no answer is retried, any other answer is
returned, the same whether the control plane is reached over HTTP or in process (``servo dev``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from servo.dispatch import HttpTransport, InboundRequest, InProcessTransport, Reply, Transport
from servo.worker._callbacks import CallbackClient, CallbackUnavailable

from tests.support.http_sink import HttpSink, http_sink

__all__ = ["http_sink"]

TASK = "ct1_task"
PATH = f"/api/v1/tasks/{TASK}/started"
Arrival = tuple[str, dict[str, str], bytes]  # path, lower-cased headers, body


@dataclass
class Plane:
    transport: Transport
    base: str
    program: Callable[[list[int]], None]  # the statuses of the next requests (then 200)
    arrived: Callable[[], list[Arrival]]


class _Programmed:
    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.seen: list[Arrival] = []

    def serve(self, request: InboundRequest) -> Reply:
        self.seen.append((request.path, dict(request.headers), request.body))
        status = self.statuses.pop(0) if self.statuses else 200
        return Reply(status, b'{"ok":true}', {"Content-Type": "application/json"})


@pytest.fixture(params=["http", "in-process"])
def plane(request: pytest.FixtureRequest, http_sink: HttpSink) -> Iterator[Plane]:
    if request.param == "http":

        def program(statuses: list[int]) -> None:
            http_sink.program(PATH, statuses)

        def arrived() -> list[Arrival]:
            return [(r.path, dict(r.headers), r.body) for r in http_sink.received(PATH)]

        yield Plane(HttpTransport(), http_sink.base_url, program, arrived)
    else:
        endpoint = _Programmed()
        transport = InProcessTransport()
        transport.mount("http://127.0.0.1:9", endpoint)
        yield Plane(transport, "http://127.0.0.1:9", endpoint.statuses.extend, lambda: list(endpoint.seen))


def _client(plane: Plane, tries: int = 3) -> CallbackClient:
    return CallbackClient(plane.transport, plane.base, TASK, "the-token", tries=tries, backoff_s=0.01)


def test_a_5xx_is_retried_until_an_answer_that_is_not(plane: Plane) -> None:
    plane.program([503, 500, 409])
    reply = _client(plane, tries=4).post("started", {"attempt": 1, "note": "ü"})
    assert reply.status == 409
    arrived = plane.arrived()
    assert len(arrived) == 3
    path, headers, body = arrived[-1]
    assert path == PATH
    assert headers["authorization"] == "Bearer the-token"
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"attempt": 1, "note": "ü"}
    assert {a[2] for a in arrived} == {body}  # every try sends the same bytes


def test_5xx_on_every_try_is_callback_unavailable(plane: Plane) -> None:
    plane.program([500, 502, 503])
    with pytest.raises(CallbackUnavailable, match="HTTP 503"):
        _client(plane, tries=3).post("started", {"attempt": 1})
    assert len(plane.arrived()) == 3


def test_a_control_plane_nobody_serves_is_callback_unavailable(plane: Plane) -> None:
    client = CallbackClient(plane.transport, "http://127.0.0.1:1", TASK, "t", tries=2, backoff_s=0.01)
    with pytest.raises(CallbackUnavailable):
        client.post("started", {"attempt": 1})


class _CountedReply(Reply):
    __slots__ = ()
    decoded: list[int] = []  # noqa: RUF012 (one list for the test's replies)

    def json_object(self) -> dict[str, Any]:
        self.decoded.append(self.status)
        return Reply.json_object(self)


class _Answering:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body

    def deliver(self, method: str, url: str, headers: Any, body: bytes, *, timeout_s: float) -> Reply:
        return _CountedReply(self.status, self.body, {"Content-Type": "application/json"})


def test_an_answer_s_body_is_decoded_only_when_the_worker_reads_it() -> None:
    """An accepted ``started`` or ``completed`` is acted on by its status alone: its body was decoded
    for nothing, twice a task."""
    _CountedReply.decoded.clear()
    accepted = CallbackClient(_Answering(200, b'{"acknowledged":true}'), "http://x", TASK, "t").post(
        "started", {}
    )
    assert accepted.ok and _CountedReply.decoded == []
    refused = CallbackClient(
        _Answering(409, b'{"error":"attempt_mismatch","message":"m"}'), "http://x", TASK, "t"
    )
    reply = refused.post("started", {})
    assert (reply.status, reply.error, reply.body["message"]) == (409, "attempt_mismatch", "m")
    empty = CallbackClient(_Answering(200, b""), "http://x", TASK, "t").post("heartbeat", {})
    assert empty.body == {} and empty.error is None
