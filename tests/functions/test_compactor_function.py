"""The compactor function: a binary-mode finalize CloudEvent compacts its workspace, then acts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from functions_framework import create_app
from servo.core.events import ledger_object_name
from servo.http.runtime import override_context
from servo.services.read_model import load_snapshot
from servo.store import ScopedStore

from tests.core.test_fold import TENANT, WS
from tests.services.compaction_support import RUNS, simple_history, write
from tests.support.context import make_context

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Any, Any, Any]]:
    ctx, _, queue = make_context(tmp_path, compact=False, defer_dispatch_ack=False)  # GCP's settings
    with override_context(ctx):
        client = create_app(
            "compactor", str(ROOT / "functions/compactor/main.py"), "cloudevent"
        ).test_client()
        yield ctx, queue, client


def finalize(name: str) -> tuple[dict[str, str], bytes]:
    attributes = {
        "type": "google.cloud.storage.object.v1.finalized",
        "source": "//storage.googleapis.com/projects/_/buckets/servo-local",
        "subject": f"objects/{name}",
    }
    headers, body = to_binary(CloudEvent(attributes, {"bucket": "servo-local", "name": name}))
    return dict(headers), body


def test_finalize_of_a_ledger_object_compacts_then_acts(env: tuple[Any, Any, Any]) -> None:
    ctx, queue, client = env
    store = ScopedStore(ctx.store, TENANT, WS)
    events = simple_history()[:2]  # RunTriggered + PlanCreated: the first task becomes READY
    write(store, events)
    headers, body = finalize(f"{TENANT}/{WS}/{ledger_object_name(events[-1].event_id)}")
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    found = load_snapshot(store).get_run(RUNS[0])
    assert found is not None and found.run is not None and found.run.state == "RUNNING"
    # Acting after the publish enqueued the READY task, then recorded request and acknowledgement.
    appended = [m.name for m in store.list("ledger/orchestration/")][2:]
    kinds = [json.loads(store.get(n).data)["event_type"] for n in appended]  # type: ignore[union-attr]
    assert kinds == ["DispatchRequested", "DispatchEnqueued"]
    assert len(queue.tasks) == 1


@pytest.mark.parametrize(
    "name", [f"{TENANT}/{WS}/state/orchestration/manifest.pointer.json", "x/y/logs/a.log"]
)
def test_other_objects_are_acknowledged_and_ignored(env: tuple[Any, Any, Any], name: str) -> None:
    ctx, _, client = env
    headers, body = finalize(name)
    assert client.post("/", headers=headers, data=body).status_code == 200
    assert load_snapshot(ScopedStore(ctx.store, TENANT, WS)).generation == 0


def test_a_plain_post_is_rejected(env: tuple[Any, Any, Any]) -> None:
    _, _, client = env
    assert client.post("/", json={"name": "x"}).status_code == 400
