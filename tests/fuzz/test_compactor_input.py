"""Malformed ledger objects and malformed CloudEvents through the compactor function (behavior §11.50).

Each is skipped and reported (a logged error naming the object, or a 4xx from the CloudEvent
framework) and never answered with a 5xx, which Eventarc would redeliver forever; and none wedges
compaction: a valid event written after them is still folded into the projection.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from functions_framework import create_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servo.core.errors import ServoError
from servo.core.events import TaskHeartbeat, decode_event, encode_event, ledger_object_name, make_event
from servo.http.runtime import override_context
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import compact_and_act
from servo.services.read_model import load_snapshot
from servo.services.trigger import trigger_run
from servo.store import LocalFileStore, ObjectStore

from tests.faults.harness import ROOT
from tests.functions.test_deploy_function import asset, manifest
from tests.fuzz.openapi import ANY_JSON, HEADER_TEXT, HOSTILE, JSON_SCALARS
from tests.support.context import FakeClock, make_context

TENANT, WS = "default", "prod"
SETTINGS = settings(
    max_examples=25, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)


@dataclass
class Compactor:
    ctx: ServiceContext
    clock: FakeClock
    client: Any
    run_id: str
    env: dict[str, Any]

    @property
    def store(self) -> ObjectStore:
        return self.ctx.workspace_store(TENANT, WS)

    def deliver(self, name: str) -> int:
        headers, body = to_binary(CloudEvent(_attributes(name), {"bucket": "servo-local", "name": name}))
        return int(self.client.post("/", headers=dict(headers), data=body).status_code)

    def heartbeat(self) -> str:
        """Append one valid event (a heartbeat of the running task) and return its object name."""
        self.clock.advance(1_000)
        now = self.clock()
        data = TaskHeartbeat(self.run_id, "ns.a", self.env["attempt"], self.env["attemptId"], "w1")
        event = make_event(
            data, event_id=self.ctx.new_id(), timestamp_ms=now, tenant_id=TENANT, workspace_id=WS
        )
        name = ledger_object_name(event.event_id)
        self.store.create(name, encode_event(event))
        return name

    def folded(self, name: str) -> bool:
        event_id = name.rsplit("/", 1)[-1].removesuffix(".json")
        part = load_snapshot(self.store).partition(self.run_id, events=True)
        return part is not None and event_id in part.events


def _attributes(name: str) -> dict[str, str]:
    return {
        "type": "google.cloud.storage.object.v1.finalized",
        "source": "//storage.googleapis.com/projects/_/buckets/servo-local",
        "subject": f"objects/{name}",
    }


@pytest.fixture(scope="module")
def compactor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compactor]:
    root = tmp_path_factory.mktemp("compactor")
    base, clock, queue = make_context(root, compact=False)
    ctx = replace(base, store=LocalFileStore(root / base.settings.bucket, durable=False))
    body = manifest(asset("ns.a"), asset("ns.b", "ns.a"))
    assert deploy_manifest(ctx, TENANT, WS, json.dumps(body).encode(), None)[0] == 201
    status, run = trigger_run(ctx, TENANT, WS, {"selection": ["ns.a"], "includeDownstream": True})
    assert status == 201
    compact_and_act(ctx, TENANT, WS)  # plan folded, dispatch requested
    compact_and_act(ctx, TENANT, WS)  # dispatch acknowledged
    (task,) = queue.take()
    with override_context(ctx):
        client = create_app(
            "compactor", str(ROOT / "functions/compactor/main.py"), "cloudevent"
        ).test_client()
        yield Compactor(ctx, clock, client, run["runId"], json.loads(task.body))


def _is_malformed(data: bytes, event_id: str) -> bool:
    """What the compactor must refuse: undecodable, another object's id, or another workspace's."""
    try:
        event = decode_event(data)
    except ServoError:
        return True
    return event.event_id != event_id or (event.tenant_id, event.workspace_id) != (TENANT, WS)


def _corrupted_events(c: Compactor) -> st.SearchStrategy[Callable[[str], bytes]]:
    """Ledger bodies for an object named after ``event_id``: a real heartbeat with one field broken,
    another object's id, a foreign scope, an unknown type, or no event at all."""

    def event_dict(event_id: str) -> dict[str, Any]:
        data = TaskHeartbeat(c.run_id, "ns.a", c.env["attempt"], c.env["attemptId"], "w1")
        event = make_event(data, event_id=event_id, timestamp_ms=c.clock(), tenant_id=TENANT, workspace_id=WS)
        return dict(json.loads(encode_event(event)))

    def broken(path: tuple[str, ...], value: Any) -> Callable[[str], bytes]:
        def build(event_id: str) -> bytes:
            body = event_dict(event_id)
            target = body
            for key in path[:-1]:
                target = target[key]
            if value is _DELETE:
                target.pop(path[-1], None)
            else:
                target[path[-1]] = value
            return json.dumps(body).encode()

        return build

    fields = st.sampled_from(
        [
            ("event_id",),
            ("event_type",),
            ("event_version",),
            ("timestamp",),
            ("tenant_id",),
            ("workspace_id",),
            ("idempotency_key",),
            ("data",),
            ("data", "type"),
            ("data", "run_id"),
            ("data", "attempt"),
            ("data", "attempt_id"),
            ("data", "progress_pct"),
        ]
    )
    values = (
        st.just(_DELETE) | JSON_SCALARS | HOSTILE | ANY_JSON | st.sampled_from(["Bogus", "other", 10**30])
    )
    raw = st.one_of(st.binary(max_size=80), ANY_JSON.map(lambda v: json.dumps(v).encode()))
    return st.one_of(
        st.builds(broken, fields, values),
        raw.map(lambda data: lambda _event_id: data),
    )


_DELETE = object()


def test_malformed_ledger_objects_are_reported_and_never_wedge_compaction(
    compactor: Compactor, caplog: pytest.LogCaptureFixture, requests_sent: Callable[[int, str], None]
) -> None:
    sent = reported_total = 0

    @SETTINGS
    @given(bodies=st.lists(_corrupted_events(compactor), min_size=1, max_size=4))
    def one_batch(bodies: list[Callable[[str], bytes]]) -> None:
        nonlocal sent, reported_total
        caplog.clear()
        written = []
        for build in bodies:
            event_id = compactor.ctx.new_id()
            data = build(event_id)
            name = ledger_object_name(event_id)
            compactor.store.create(name, data)
            written.append((name, _is_malformed(data, event_id)))
        for name, _ in written:
            assert compactor.deliver(f"{TENANT}/{WS}/{name}") < 500
            sent += 1
        good = compactor.heartbeat()
        assert compactor.deliver(f"{TENANT}/{WS}/{good}") < 500
        sent += 1
        assert compactor.folded(good), "a valid event after malformed ones was not folded"
        reported = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
        for name, malformed in written:
            if malformed:
                assert name in reported, f"malformed {name} was not reported"
                reported_total += 1

    with caplog.at_level(logging.ERROR, logger="servo.orchestrate"):
        one_batch()
    assert reported_total > 20  # the generator really produced malformed objects
    requests_sent(sent, f"compactor: finalize events of {reported_total} malformed ledger objects and more")


def _cloudevents(c: Compactor) -> st.SearchStrategy[tuple[dict[str, str], bytes]]:
    names = st.one_of(
        st.sampled_from(
            [
                f"{TENANT}/{WS}/ledger/orchestration/01ARZ3NDEKTSV4RRFFQ69G5FAV.json",  # never written
                f"{TENANT}/{WS}/ledger/orchestration/../../state/orchestration/manifest.pointer.json",
                f"{TENANT}/{WS}/state/orchestration/manifest.pointer.json",
                f"{TENANT}/ghost-ws/ledger/orchestration/01ARZ3NDEKTSV4RRFFQ69G5FAV.json",
                f"{TENANT}/{WS}/ledger/orchestration/not-a-ulid.json",
                "",
            ]
        ),
        HOSTILE,
        st.text(max_size=60),
    )

    def binary(name: str, data: Any, kind: str) -> tuple[dict[str, str], bytes]:
        attributes = _attributes(name) | {"type": kind}
        headers, body = to_binary(CloudEvent(attributes, data))
        return dict(headers), body

    def structured(name: str, data: Any) -> tuple[dict[str, str], bytes]:
        headers, body = to_structured(CloudEvent(_attributes(name), data))
        return dict(headers), body

    data = st.one_of(names.map(lambda n: {"bucket": "servo-local", "name": n}), ANY_JSON)
    kinds = st.sampled_from(
        ["google.cloud.storage.object.v1.finalized", "google.cloud.storage.object.v1.deleted"]
    )
    garbage_headers = st.dictionaries(
        st.sampled_from(["ce-id", "ce-type", "ce-source", "ce-specversion", "ce-subject", "Content-Type"]),
        HEADER_TEXT,
        max_size=6,
    )
    return st.one_of(
        st.builds(binary, names, data, kinds),
        st.builds(structured, names, data),
        # UTF-8 only: a non-UTF-8 body is the framework's 500 (test_a_non_utf8_cloudevent_body_is_a_4xx).
        st.tuples(garbage_headers, st.text(max_size=120).map(str.encode)),
        st.tuples(
            st.just({"Content-Type": "application/cloudevents+json"}),
            ANY_JSON.map(lambda v: json.dumps(v).encode()),
        ),
    )


def test_malformed_cloudevents_are_refused_without_a_5xx_and_never_wedge_compaction(
    compactor: Compactor, requests_sent: Callable[[int, str], None]
) -> None:
    sent = 0

    @SETTINGS
    @given(events=st.lists(_cloudevents(compactor), min_size=1, max_size=3))
    def one_batch(events: list[tuple[dict[str, str], bytes]]) -> None:
        nonlocal sent
        for headers, body in events:
            res = compactor.client.post("/", headers=headers, data=body)
            sent += 1
            assert res.status_code < 500, f"{headers} {body[:120]!r} -> {res.status_code} {res.data[:200]!r}"
        good = compactor.heartbeat()
        assert compactor.deliver(f"{TENANT}/{WS}/{good}") < 500
        sent += 1
        assert compactor.folded(good)

    one_batch()
    requests_sent(sent, "compactor: malformed CloudEvents")


def test_a_non_utf8_cloudevent_body_is_a_4xx(compactor: Compactor) -> None:
    assert compactor.client.post("/", data=b"\x80").status_code < 500
