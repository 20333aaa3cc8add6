"""The Transport contract, run against both adapters: HttpTransport to an endpoint served over real HTTP
(werkzeug's threaded server), and InProcessTransport to the same endpoint mounted in this process.

Whatever carries a request, the endpoint sees the same method, path, query, headers and body bytes,
and the caller gets the same status, headers and body back, or a TransportError when no answer came.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from servo.dispatch import (
    HttpTransport,
    InboundRequest,
    InProcessTransport,
    Reply,
    Transport,
    TransportError,
    TransportTimeout,
)
from servo.dispatch._wsgi import inbound_request, wsgi_response
from werkzeug.serving import make_server
from werkzeug.wrappers import Request

RELEASE_S = 5.0


class Echo:
    """An endpoint that answers what it was asked, as JSON; some paths answer otherwise."""

    def __init__(self) -> None:
        self.seen: list[InboundRequest] = []
        self.release = threading.Event()
        self.pair = threading.Barrier(2, timeout=RELEASE_S)

    def serve(self, request: InboundRequest) -> Reply:
        self.seen.append(request)
        if request.path == "/status":
            status = int(request.query.removeprefix("code="))
            return Reply(status, b'{"code":"X"}', {"Content-Type": "application/json", "Retry-After": "1"})
        if request.path == "/slow":
            self.release.wait(RELEASE_S)
        if request.path == "/crash":
            raise RuntimeError("the endpoint failed")
        if request.path == "/pair":
            self.pair.wait()  # answers only when two requests are served at once
        echo = {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": dict(request.headers),
            "body": request.body.decode("latin-1"),
        }
        return Reply(201, json.dumps(echo).encode(), {"Content-Type": "application/json", "X-Echo": "yes"})


@dataclass
class Target:
    transport: Transport
    base: str
    echo: Echo


@pytest.fixture(params=["http", "in-process"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    echo = Echo()
    if request.param == "http":

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            return wsgi_response(echo.serve(inbound_request(Request(environ))))(environ, start_response)

        server = make_server("127.0.0.1", 0, app, threaded=True)
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        try:
            yield Target(HttpTransport(), f"http://127.0.0.1:{server.server_port}", echo)
        finally:
            echo.release.set()
            server.shutdown()
            server.server_close()
    else:
        transport = InProcessTransport()
        base = "http://127.0.0.1:9"  # nothing listens there: only the mount can answer
        transport.mount(base, echo)
        yield Target(transport, base, echo)
        echo.release.set()


def _echo(reply: Reply) -> dict[str, Any]:
    assert reply.status == 201, reply
    value = json.loads(reply.body)
    assert isinstance(value, dict)
    return value


def test_method_path_query_headers_and_body_arrive_intact(target: Target) -> None:
    body = '{"ü":[1,2],"token":"a.b.c"}'.encode()
    reply = target.transport.deliver(
        "POST",
        f"{target.base}/api/v1/tasks/ct1%5Fabc/completed?x=1&y=%C3%BC",
        {"Content-Type": "application/json", "Authorization": "Bearer t", "X-CloudTasks-TaskName": "d_1"},
        body,
        timeout_s=5,
    )
    seen = _echo(reply)
    assert seen["method"] == "POST"
    assert seen["path"] == "/api/v1/tasks/ct1_abc/completed"  # percent-decoded, as a server decodes it
    assert seen["query"] == "x=1&y=%C3%BC"
    assert seen["body"].encode("latin-1") == body
    headers = seen["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Bearer t"
    assert headers["x-cloudtasks-taskname"] == "d_1"
    assert headers["host"] == target.base.removeprefix("http://")
    assert headers["content-length"] == str(len(body))


def test_an_empty_body_arrives_empty(target: Target) -> None:
    seen = _echo(target.transport.deliver("POST", f"{target.base}/empty", {}, b"", timeout_s=5))
    assert seen["body"] == ""
    assert seen["headers"]["content-length"] == "0"


def test_the_reply_carries_the_endpoints_status_headers_and_body(target: Target) -> None:
    reply = target.transport.deliver("GET", f"{target.base}/anything", {}, b"", timeout_s=5)
    assert reply.status == 201
    assert reply.header("x-echo") == "yes"
    assert reply.header("Content-Type") == "application/json"
    assert reply.json_object()["method"] == "GET"


@pytest.mark.parametrize("status", [200, 204, 400, 401, 409, 410, 413, 429, 500, 503])
def test_every_status_comes_back_as_answered_not_raised(target: Target, status: int) -> None:
    reply = target.transport.deliver("POST", f"{target.base}/status?code={status}", {}, b"{}", timeout_s=5)
    assert reply.status == status
    if status != 204:  # a 204 has no body, by HTTP's rules
        assert reply.json_object() == {"code": "X"}
        assert reply.header("retry-after") == "1"


def test_an_endpoint_that_raises_answers_500(target: Target) -> None:
    reply = target.transport.deliver("POST", f"{target.base}/crash", {}, b"{}", timeout_s=5)
    assert reply.status == 500


def test_no_answer_within_the_timeout_is_a_transport_timeout(target: Target) -> None:
    with pytest.raises(TransportTimeout):
        target.transport.deliver("POST", f"{target.base}/slow", {}, b"{}", timeout_s=0.2)
    assert isinstance(TransportTimeout("x"), TransportError)


def test_requests_are_served_concurrently(target: Target) -> None:
    replies: list[int] = []

    def call() -> None:
        replies.append(target.transport.deliver("POST", f"{target.base}/pair", {}, b"", timeout_s=5).status)

    callers = [threading.Thread(target=call) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(RELEASE_S + 1)
    assert replies == [201, 201]


def test_a_target_nobody_serves_is_a_transport_error(target: Target) -> None:
    with pytest.raises(TransportError):
        # Nothing listens on port 1, and nothing is mounted for it.
        target.transport.deliver("POST", "http://127.0.0.1:1/x", {}, b"{}", timeout_s=2)


def test_an_unmounted_base_url_goes_to_the_fallback_transport() -> None:
    inner, outer = Echo(), InProcessTransport()
    fallback = InProcessTransport()
    fallback.mount("http://127.0.0.1:7", inner)
    routed = InProcessTransport(fallback=fallback)
    outer.mount("http://127.0.0.1:8", inner)
    assert routed.deliver("POST", "http://127.0.0.1:7/x", {}, b"", timeout_s=5).status == 201
    assert routed.serves("http://127.0.0.1:7/x") is False
    assert outer.serves("http://127.0.0.1:8/dispatch") is True
    outer.unmount("http://127.0.0.1:8")
    with pytest.raises(TransportError):
        outer.deliver("POST", "http://127.0.0.1:8/x", {}, b"", timeout_s=2)


def test_an_in_process_request_does_not_carry_the_callers_context() -> None:
    """A worker's per-task output capture lives in a ContextVar: a callback served in process must not
    see it, or the control plane's own log lines would land in the task's log."""
    from contextvars import ContextVar

    marker: ContextVar[str | None] = ContextVar("marker", default=None)
    seen: list[str | None] = []

    class Probe:
        def serve(self, request: InboundRequest) -> Reply:
            seen.append(marker.get())
            return Reply(204)

    transport = InProcessTransport()
    transport.mount("http://127.0.0.1:9", Probe())
    token = marker.set("the caller's")
    try:
        assert transport.deliver("POST", "http://127.0.0.1:9/x", {}, b"", timeout_s=5).status == 204
    finally:
        marker.reset(token)
    assert seen == [None]


def test_in_process_requests_one_after_another_reuse_one_serving_thread() -> None:
    names: list[str] = []

    class Probe:
        def serve(self, request: InboundRequest) -> Reply:
            names.append(f"{threading.current_thread().name}#{threading.get_ident()}")
            return Reply(204)

    transport = InProcessTransport()
    transport.mount("http://127.0.0.1:9", Probe())
    for _ in range(5):
        assert transport.deliver("POST", "http://127.0.0.1:9/x", {}, b"", timeout_s=5).status == 204
    assert len(set(names)) == 1 and names[0].startswith("servo-inprocess#")
    assert threading.get_ident() not in {int(n.split("#")[1]) for n in names}
