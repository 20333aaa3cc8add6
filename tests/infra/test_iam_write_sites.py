"""Every object a function writes, checked against that function's storage grants.

The crash-at-every-write scenario passes every write site of the product (its census test fails when
a new one appears), so the names its functions really write — recorded by the faulty store, with the
function path each came from — are the writes the deployment must allow. A new kind of object that
the grants forget fails here, not as a 403 on the first deployment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from servo.services.callbacks import log_object_name

from tests.faults.harness import TENANT, WS, Chaos
from tests.faults.test_crash_at_every_write import (
    CALLBACK_DISPATCH_SITES,
    COMPACTION_SITES,
    PATH_SITES,
    play,
)
from tests.infra import _tf
from tests.infra._iam import holds, may
from tests.infra.conftest import CORE
from tests.support.faults import WriteRecord

# The harness labels a write with the function path that made it; compaction is the compactor's.
FUNCTION_OF_PHASE = {"compaction": "compactor"}


@pytest.fixture(scope="module")
def writes(tmp_path_factory: pytest.TempPathFactory) -> list[WriteRecord]:
    """The writes of the scenario, compacting inline and through the compactor function."""
    found: list[WriteRecord] = []
    for deferred in (False, True):
        world, _ = play(tmp_path_factory.mktemp("census"), Chaos(deferred=deferred))
        found += [w for w in world.store.writes if w.phase]
    return found


def _streamed_log_chunks(writes: list[WriteRecord]) -> Iterator[WriteRecord]:
    """The chunked form of each whole-attempt log the scenario uploaded (same function, same grant)."""
    for w in writes:
        if w.kind == "logs":
            run_id, task_key, attempt = w.name.split("/logs/", 1)[1].removesuffix(".log").split("/")
            name = log_object_name(run_id, task_key, int(attempt.removeprefix("attempt-")), 999_999)
            yield WriteRecord(w.phase, w.op, f"{TENANT}/{WS}/{name}", w.kind)


def test_the_recording_covers_every_write_site(writes: list[WriteRecord]) -> None:
    # As deployed the completing callback dispatches what it made ready, so its two writes are here too.
    assert {(w.phase, w.kind) for w in writes} == PATH_SITES | COMPACTION_SITES | CALLBACK_DISPATCH_SITES


def test_every_object_a_function_writes_is_granted_to_it(
    writes: list[WriteRecord],
    schedule_writes: list[WriteRecord],
    sensor_writes: list[WriteRecord],
    backfill_writes: list[WriteRecord],
    core_locals: dict[str, Any],
) -> None:
    writes = writes + schedule_writes + sensor_writes + backfill_writes
    denied = sorted(
        {
            (FUNCTION_OF_PHASE.get(w.phase, w.phase), w.op, w.name)
            for w in [*writes, *_streamed_log_chunks(writes)]
            if not may(core_locals, FUNCTION_OF_PHASE.get(w.phase, w.phase), w.op, w.name)
        }
    )
    assert denied == [], "\n".join(map(str, denied))


def test_every_grant_is_used_by_a_write_of_its_function(
    writes: list[WriteRecord],
    schedule_writes: list[WriteRecord],
    sensor_writes: list[WriteRecord],
    backfill_writes: list[WriteRecord],
    core_locals: dict[str, Any],
) -> None:
    writes = writes + schedule_writes + sensor_writes + backfill_writes
    # Least privilege: a grant no write needs (or a role wider than the writes need) is one too many.
    for key, grant in core_locals["write_grants"].items():
        mine = [
            w
            for w in writes
            if FUNCTION_OF_PHASE.get(w.phase, w.phase) == grant["fn"]
            and holds(core_locals["write_conditions"][key], w.name)
        ]
        assert mine, key
        if grant["role"] != "roles/storage.objectCreator":
            assert {w.op for w in mine} != {"create"}, f"{key}: create-only writes need objectCreator"


def test_every_function_may_read_the_bucket() -> None:
    # Reads need no per-prefix check: each function holds objectViewer on the whole data bucket.
    reader = _tf.resources(CORE)[("google_storage_bucket_iam_member", "reader")]
    assert reader["role"] == "roles/storage.objectViewer"
    assert "condition" not in reader
    assert reader["for_each"] == "${toset(local.functions)}"


SCHEDULED = {
    "manifestVersion": "1.0",
    "codeVersionId": "cv1",
    "assets": [{"key": "ns.a", "id": "id-a"}],
    "schedules": [{"id": "every", "cron": "* * * * *", "target": ["ns.a"], "defaultEnabled": True}],
}


@pytest.fixture(scope="module")
def schedule_writes(tmp_path_factory: pytest.TempPathFactory) -> list[WriteRecord]:
    """The writes of a schedule's life through the functions: deployed, ticked by the sweep, disabled."""
    from servo.http.runtime import override_context
    from servo.store import LocalFileStore

    from tests.faults.harness import _app
    from tests.support.context import T0, FakeClock, make_context
    from tests.support.faults import FaultPlan, FaultyStore, phase

    root = tmp_path_factory.mktemp("schedules")
    clock = FakeClock(T0 - 1000)
    base, _, _ = make_context(root, clock=clock, compact=False)
    store = FaultyStore(LocalFileStore(root / base.settings.bucket, durable=False), FaultPlan())
    ctx = replace(base, store=store)
    url = f"/v1/workspaces/{WS}/schedules/every/disable"
    with override_context(ctx):
        with phase("deploy"):
            res = _app("deploy").test_client().post(f"/v1/workspaces/{WS}/manifests", json=SCHEDULED)
            assert res.status_code == 201, res.get_json()
        clock.now_ms = T0 + 90_000
        with phase("timers"):
            body = {"tenantId": TENANT, "workspaceId": WS}
            res = (
                _app("timers")
                .test_client()
                .post("/v1/timers/sweep", json=body, headers=ctx.settings.internal_headers())
            )
            assert res.status_code == 200, res.get_json()
            assert sum(w["scheduleTicks"] for w in res.get_json()["workspaces"].values()) > 0
        with phase("automation"):
            res = _app("automation").test_client().post(url, json={})
            assert res.status_code == 200, res.get_json()
    return [w for w in store.writes if w.phase]


SENSED = {
    "manifestVersion": "1.0",
    "codeVersionId": "cv1",
    "assets": [{"key": "ns.a", "id": "id-a"}],
    "sensors": [
        {
            "id": "files",
            "kind": "POLL",
            "target": ["ns.a"],
            "minimumIntervalSeconds": 30,
            "defaultEnabled": True,
        },
        {
            "id": "inbox",
            "kind": "PUSH",
            "target": ["ns.a"],
            "minimumIntervalSeconds": 30,
            "defaultEnabled": True,
        },
    ],
}


DAY = {"name": "date", "kind": "time", "granularity": "day", "start": "2025-01-01"}
PARTITIONED = {
    "manifestVersion": "1.0",
    "codeVersionId": "cv1",
    "assets": [{"key": "ns.d", "id": "id-d", "partitioning": {"dimensions": [DAY]}}],
}


@pytest.fixture(scope="module")
def sensor_writes(tmp_path_factory: pytest.TempPathFactory) -> list[WriteRecord]:
    """The writes of sensors' life through the functions: deployed, a push message received, a manual
    evaluation, the sweep's evaluations, their results (with a run request) reported, and the
    compactor starting those runs and requesting the next evaluations after commit."""
    import base64
    import json

    from servo.http.runtime import override_context
    from servo.store import LocalFileStore

    from tests.faults.harness import _app, finalize_event
    from tests.support.context import T0, FakeClock, make_context
    from tests.support.faults import FaultPlan, FaultyStore, phase

    root = tmp_path_factory.mktemp("sensors")
    clock = FakeClock(T0 - 1000)
    base, _, queue = make_context(root, clock=clock, compact=False)
    store = FaultyStore(LocalFileStore(root / base.settings.bucket, durable=False), FaultPlan())
    ctx = replace(base, store=store)
    sensors = f"/v1/workspaces/{WS}/sensors"
    with override_context(ctx):
        with phase("deploy"):
            res = _app("deploy").test_client().post(f"/v1/workspaces/{WS}/manifests", json=SENSED)
            assert res.status_code == 201, res.get_json()
        with phase("automation"):
            client = _app("automation").test_client()
            data = base64.b64encode(b'{"file": "a.csv"}').decode()
            envelope = {"message": {"messageId": "m1", "data": data, "attributes": {"k": "v"}}}
            res = client.post(f"{sensors}/inbox/push?tenant={TENANT}", json=envelope)
            assert res.status_code == 200, res.get_json()
            res = client.post(f"{sensors}/files/evaluate", json={}, headers={"Idempotency-Key": "k1"})
            assert res.status_code == 202, res.get_json()
        clock.now_ms = T0 + 90_000
        with phase("timers"):
            body = {"tenantId": TENANT, "workspaceId": WS}
            headers = ctx.settings.internal_headers()
            res = _app("timers").test_client().post("/v1/timers/sweep", json=body, headers=headers)
            assert res.status_code == 200, res.get_json()
        envelopes = [json.loads(t.body) for t in queue.take() if t.task_id.startswith("s_")]
        assert {e["sensorId"] for e in envelopes} == {"files", "inbox"}
        with phase("callback"):
            client = _app("callback").test_client()
            for i, e in enumerate(envelopes):
                result = {"status": "TRIGGERED", "runRequests": [{"runKey": f"k{i}", "labels": {}}]}
                res = client.post(
                    f"/v1/sensor-evaluations/{e['evaluationId']}/result",
                    json=result,
                    headers={"Authorization": f"Bearer {e['evaluationToken']}"},
                )
                assert res.status_code == 200, res.get_json()
        clock.now_ms += 11_000  # past a write's window: the manual evaluation can no longer win v0
        with phase("compaction"):
            runs_before = len(store.list(f"{TENANT}/{WS}/run_keys/"))
            for meta in store.list(f"{TENANT}/{WS}/ledger/orchestration/"):
                headers, event = finalize_event(meta.name)
                assert _app("compactor", "cloudevent").test_client().post("/", headers=headers, data=event)
            assert len(store.list(f"{TENANT}/{WS}/run_keys/")) > runs_before  # submitted after commit
            # The next evaluations, requested after commit (§6.2).
            requested = [w for w in store.writes if w.kind == "ledger:SensorEvaluationRequested"]
            assert any(w.phase == "compaction" for w in requested)
    return [w for w in store.writes if w.phase]


@pytest.fixture(scope="module")
def backfill_writes(tmp_path_factory: pytest.TempPathFactory) -> list[WriteRecord]:
    """The writes of a backfill's life through the functions: created (its first chunk submitted),
    its first run cancelled, the compactor planning the next chunk once that run ended (the
    after-commit path), paused, resumed and cancelled, then swept."""
    from servo.http.runtime import override_context
    from servo.store import LocalFileStore

    from tests.faults.harness import _app, finalize_event
    from tests.support.context import make_context
    from tests.support.faults import FaultPlan, FaultyStore, phase

    def compact_all() -> None:
        with phase("compaction"):
            for meta in store.list(f"{TENANT}/{WS}/ledger/orchestration/"):
                headers, event = finalize_event(meta.name)
                assert _app("compactor", "cloudevent").test_client().post("/", headers=headers, data=event)

    root = tmp_path_factory.mktemp("backfills")
    # As deployed: the sweep kicks the compactor instead of compacting itself.
    base, _, _ = make_context(root, compact=False, sweep_kicks=True)
    store = FaultyStore(LocalFileStore(root / base.settings.bucket, durable=False), FaultPlan())
    ctx = replace(base, store=store)
    backfills = f"/v1/workspaces/{WS}/backfills"
    body = {"assets": ["ns.d"], "partitions": {"range": {"start": "2025-01-01", "end": "2025-01-04"}}}
    with override_context(ctx):
        with phase("deploy"):
            res = _app("deploy").test_client().post(f"/v1/workspaces/{WS}/manifests", json=PARTITIONED)
            assert res.status_code == 201, res.get_json()
        automation = _app("automation").test_client()
        with phase("automation"):
            one_at_a_time = {**body, "chunkSize": 1, "maxConcurrentRuns": 1}
            res = automation.post(backfills, json=one_at_a_time, headers={"Idempotency-Key": "k"})
            assert res.status_code == 201, res.get_json()
            bf = res.get_json()["backfillId"]
            first = automation.get(f"{backfills}/{bf}/chunks").get_json()["chunks"][0]["partitions"][0]
        compact_all()
        with phase("cancel"):
            res = (
                _app("cancel")
                .test_client()
                .post(f"/v1/workspaces/{WS}/runs/{first['runId']}/cancel", json={})
            )
            assert res.status_code < 300, res.get_json()
        compact_all()
        with phase("automation"):
            chunks = automation.get(f"{backfills}/{bf}/chunks").get_json()["chunks"]
            assert chunks[1]["partitions"][0].get("runId"), chunks  # planned on the compactor's path
            for action in ("pause", "resume", "cancel"):
                assert automation.post(f"{backfills}/{bf}/{action}", json={}).status_code == 202
        with phase("timers"):
            body = {"tenantId": TENANT, "workspaceId": WS}
            sweep = _app("timers").test_client()
            res = sweep.post("/v1/timers/sweep", json=body, headers=ctx.settings.internal_headers())
            assert res.status_code == 200, res.get_json()
    return [w for w in store.writes if w.phase]
