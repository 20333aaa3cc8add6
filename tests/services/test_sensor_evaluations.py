"""Sensor evaluations end to end through the services on an injected clock: the sweep requests and
enqueues, the result callback applies by compare-and-set, run requests become runs (automation §6.2,
§6.3, §7 P1–P13). The worker's part is played by the test: it reports results with the task's token."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servo.core.errors import CallbackRejected, InvalidInput, NotFound, Unauthorized
from servo.core.events import SensorEvaluated
from servo.core.keys import encode_task_id
from servo.core.sensors import evaluation_task_name
from servo.services import sensors
from servo.services.context import ServiceContext
from servo.services.runs import list_runs
from servo.services.sensor_results import report_result
from servo.services.sensor_sweep import sweep_sensors
from servo.services.trigger import trigger_run
from servo.settings import Settings
from servo.tokens import issue_task_token

from tests.services.sensor_support import (
    SECOND,
    T,
    W,
    deploy,
    evaluations,
    fail_run,
    ledger_names,
    poll,
    push,
    report,
    run_status,
    show,
    tasks,
)
from tests.support.context import FakeClock, RecordingQueue, make_context


@pytest.fixture
def env(tmp_path: Path) -> tuple[ServiceContext, FakeClock, RecordingQueue]:
    return make_context(tmp_path)


def first_poll(ctx: ServiceContext, queue: RecordingQueue) -> dict[str, Any]:
    """Deploy an enabled poll sensor and sweep once: its first evaluation's task."""
    deploy(ctx, poll(defaultEnabled=True))
    sweep_sensors(ctx, T, W)
    [task] = tasks(queue)
    return task


def sweep_after_a_failed_run(ctx: ServiceContext, queue: RecordingQueue, *entries: dict[str, Any]) -> str:
    """Deploy these sensors, fail a run of ns.a (the worker's part played), sweep once: the run's id."""
    deploy(ctx, *entries)
    _, answer = trigger_run(ctx, T, W, {"selection": ["ns.a"]})
    fail_run(ctx, queue, answer["runId"])
    sweep_sensors(ctx, T, W)
    return str(answer["runId"])


def runs(ctx: ServiceContext) -> list[dict[str, object]]:
    return list_runs(ctx, T, W, {})["runs"]


def test_a_due_poll_is_requested_once_and_enqueued_as_its_named_task(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, clock, queue = env
    deploy(ctx, poll(defaultEnabled=True))
    # Deployed enabled: the compactor requested the first evaluation after commit (§6.2); the sweep
    # finds it in flight and enqueues its task again, a name collision.
    assert sweep_sensors(ctx, T, W)["evaluations"] == 0
    [task] = tasks(queue)
    assert task["evaluationId"] == "files:v0:1" and task["expectedStateVersion"] == 0
    assert task["taskName"] == evaluation_task_name("files:v0:1")
    assert task["url"].endswith("/sensor-evaluations") and task["trigger"] == "POLL"
    assert show(ctx)["inFlightEvaluationId"] == "files:v0:1"
    # In flight: nothing new; the same task is enqueued again as a repair (a name collision is success).
    clock.advance(40 * SECOND)
    before = ledger_names(ctx)
    assert sweep_sensors(ctx, T, W)["evaluations"] == 0
    assert ledger_names(ctx) == before
    assert [t["taskName"] for t in tasks(queue)] == []  # the recording queue dedups names like Cloud Tasks


def test_P3_P4_a_result_from_the_current_version_sets_the_cursor_and_makes_its_run(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, clock, queue = env
    task = first_poll(ctx, queue)
    answer = report(
        ctx, task, status="TRIGGERED", cursorUpdated=True, cursor="c1", runRequests=[{"runKey": "f1.csv"}]
    )
    assert answer["acknowledged"] is True
    assert show(ctx)["cursor"] == "c1" and show(ctx)["stateVersion"] == 1
    [run] = runs(ctx)
    assert run["runKey"] == "sensor:files:f1.csv"
    assert run["trigger"] == {"type": "sensor", "sensorId": "files", "evaluationId": "files:v0:1"}
    [evaluation] = evaluations(ctx, status="TRIGGERED")
    assert evaluation["status"] == "TRIGGERED" and evaluation["cursorAfter"] == "c1"
    assert evaluation["runRequests"][0]["status"] == "CREATED"
    assert evaluation["runRequests"][0]["runId"] == run["runId"]
    # The next poll, requested after commit for one interval later, from v1: the same run key makes
    # no second run.
    [task] = tasks(queue)
    assert task["evaluationId"] == "files:v1:1" and task["cursor"] == "c1"
    clock.advance(31 * SECOND)
    report(ctx, task, status="TRIGGERED", runRequests=[{"runKey": "f1.csv"}])
    assert len(runs(ctx)) == 1
    assert evaluations(ctx, status="TRIGGERED")[0]["runRequests"][0]["status"] == "EXISTING"


def test_P12_a_token_for_another_evaluation_or_a_task_token_is_401_and_a_second_report_409(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, clock, queue = env
    deploy(ctx, poll(defaultEnabled=True), poll("other", defaultEnabled=True))
    sweep_sensors(ctx, T, W)
    mine, other = sorted(tasks(queue), key=lambda t: t["sensorId"])
    with pytest.raises(CallbackRejected) as refused:
        report_result(
            ctx,
            mine["evaluationId"],
            {"authorization": f"Bearer {other['evaluationToken']}"},
            {"status": "SKIPPED"},
        )
    assert refused.value.http_status == 401 and refused.value.error == "invalid_token"
    task_token, _ = issue_task_token(
        Settings().token_secret,
        task_id=encode_task_id("01ARZ3NDEKTSV4RRFFQ69G5FAV", "ns.a"),
        tenant_id=T,
        workspace_id=W,
        run_id="r",
        attempt=1,
        attempt_id="a1",
        now_s=clock.now_ms // 1000,
    )
    with pytest.raises(CallbackRejected, match="not a sensor evaluation token"):
        report_result(
            ctx, mine["evaluationId"], {"authorization": f"Bearer {task_token}"}, {"status": "SKIPPED"}
        )
    with pytest.raises(CallbackRejected, match="missing token"):
        report_result(ctx, mine["evaluationId"], {}, {"status": "SKIPPED"})
    report(ctx, mine)
    with pytest.raises(CallbackRejected) as caught:
        report(ctx, mine, status="TRIGGERED", runRequests=[{}])
    assert caught.value.http_status == 409 and caught.value.error == "evaluation_already_reported"
    assert [e["status"] for e in evaluations(ctx, "other")] == ["PENDING"]
    assert [e["status"] for e in evaluations(ctx)] == ["PENDING", "SKIPPED"]  # the next one requested


class _MeetAtTheLedger:
    """The store port, holding the first ledger write until a second one arrives (or 10 s passed): two
    reports of one evaluation are then both past their checks before either is recorded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.meeting = threading.Barrier(2)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create(self, name: str, data: bytes, **kw: Any) -> int:
        if "/ledger/orchestration/" in name and not self.meeting.broken:
            with contextlib.suppress(threading.BrokenBarrierError):
                self.meeting.wait(timeout=10)
            self.meeting.abort()  # met once: later writes go straight through
        return int(self.inner.create(name, data, **kw))


def test_P12_two_results_for_one_evaluation_at_once_record_one_and_the_other_is_409(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    from servo.http.runtime import override_context

    from tests.faults.harness import _app

    ctx, _, queue = env
    task = first_poll(ctx, queue)
    ctx = replace(ctx, store=_MeetAtTheLedger(ctx.store))
    url = f"/v1/sensor-evaluations/{task['evaluationId']}/result"
    headers = {"Authorization": f"Bearer {task['evaluationToken']}"}

    def post(key: str) -> tuple[int, dict[str, Any]]:
        body = {"status": "TRIGGERED", "runRequests": [{"runKey": key}]}
        res = _app("callback").test_client().post(url, json=body, headers=headers)
        return res.status_code, res.get_json()

    with override_context(ctx), ThreadPoolExecutor(2) as pool:
        answers = sorted(pool.map(post, ["a", "b"]), key=lambda a: a[0])
    assert [status for status, _ in answers] == [200, 409]
    assert answers[1][1]["error"] == "evaluation_already_reported"
    results = [e for e in _ledger_events(ctx) if isinstance(e.data, SensorEvaluated)]
    assert len(results) == 1
    [evaluation] = evaluations(ctx, status="TRIGGERED")
    assert len(evaluation["runRequests"]) == 1
    assert [r["runKey"] for r in runs(ctx)] == [results[0].data.run_requests[0]["run_key"]]


@pytest.mark.parametrize(
    "body",
    [
        {"status": "DONE"},
        {"status": "SKIPPED", "runRequests": [{}]},
        {"status": "TRIGGERED", "runRequests": "x"},
        {"status": "SKIPPED", "cursor": "x" * (16 * 1024 + 1), "cursorUpdated": True},
        {"status": "SKIPPED", "surprise": 1},
        {"status": "SKIPPED", "log": "x" * (64 * 1024 + 1)},
    ],
)
def test_a_malformed_result_is_400_and_records_nothing(
    env: tuple[ServiceContext, FakeClock, RecordingQueue], body: dict[str, object]
) -> None:
    ctx, _, queue = env
    task = first_poll(ctx, queue)
    before = ledger_names(ctx)
    with pytest.raises(CallbackRejected) as refused:
        report_result(ctx, task["evaluationId"], {"authorization": f"Bearer {task['evaluationToken']}"}, body)
    assert refused.value.http_status == 400 and ledger_names(ctx) == before


def test_requests_breaking_the_definition_make_the_evaluation_error_naming_them(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, _, queue = env
    task = first_poll(ctx, queue)
    report(
        ctx,
        task,
        status="TRIGGERED",
        runRequests=[{"assetSelection": ["ns.b"]}, {"labels": {"servo.x": "1"}}],
    )
    [evaluation] = evaluations(ctx, status="ERROR")
    assert "runRequests[0]" in evaluation["error"] and "runRequests[1]" in evaluation["error"]
    assert runs(ctx) == [] and show(ctx)["stateVersion"] == 0


def test_P2_two_evaluations_from_one_state_the_second_is_stale_and_makes_no_run(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, _, queue = env
    deploy(ctx, poll(defaultEnabled=True))
    sweep_sensors(ctx, T, W)
    [scheduled] = tasks(queue)
    assert sensors.evaluate_sensor(ctx, T, W, "files", {}, "k1")[1]["evaluationId"] == "files:manual:k1"
    [manual] = tasks(queue)
    report(ctx, scheduled, status="TRIGGERED", runRequests=[{"runKey": "a"}])
    report(ctx, manual, status="TRIGGERED", runRequests=[{"runKey": "b"}])
    by_id = {e["evaluationId"]: e for e in evaluations(ctx)}
    assert by_id["files:v0:1"]["status"] == "TRIGGERED"
    assert by_id["files:manual:k1"]["status"] == "SKIPPED_STALE"
    assert by_id["files:manual:k1"]["droppedRunRequests"] == 1
    assert [r["runKey"] for r in runs(ctx)] == ["sensor:files:a"]


def test_P5_an_error_keeps_the_cursor_and_the_next_poll_waits_the_interval(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, clock, queue = env
    report(ctx, first_poll(ctx, queue), status="SKIPPED", cursorUpdated=True, cursor="c1")
    clock.advance(31 * SECOND)
    report(ctx, tasks(queue)[0], status="ERROR", error="boom")
    after = show(ctx)
    assert (
        after["cursor"] == "c1" and after["status"] == "ACTIVE" and after["lastEvaluationStatus"] == "ERROR"
    )
    # The next attempt, requested after commit, waits the interval (the backoff) in its queue.
    [retry] = tasks(queue)
    assert retry["evaluationId"] == "files:v1:2"  # the same version, the next attempt
    assert retry["scheduleTimeMs"] == clock.now_ms + 30 * SECOND


def test_P7_a_paused_sensor_is_not_evaluated_its_messages_are_skipped_and_manual_evaluate_warns(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, clock, queue = env
    deploy(ctx, poll(), push())
    clock.advance(60 * SECOND)
    assert sweep_sensors(ctx, T, W)["evaluations"] == 0
    answer = sensors.receive_push(ctx, T, W, "inbox", {"message": {"messageId": "m1", "data": ""}})
    assert answer == {"messageId": "m1", "status": "SKIPPED"}
    status, body = sensors.evaluate_sensor(ctx, T, W, "files", {}, "k")
    assert status == 202 and body["warning"] == "sensor is paused"
    [task] = tasks(queue)
    report(ctx, task, status="TRIGGERED", runRequests=[{"runKey": "manual"}])
    assert [r["runKey"] for r in runs(ctx)] == ["sensor:files:manual"]
    again = sensors.evaluate_sensor(ctx, T, W, "files", {}, "k")[1]
    assert again == {"evaluationId": "files:manual:k", "status": "TRIGGERED", "warning": "sensor is paused"}
    assert tasks(queue) == []  # the same evaluation: nothing requested or enqueued again


def test_P1_a_push_message_delivered_twice_is_one_item_one_evaluation_one_run(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, _, queue = env
    deploy(ctx, push(defaultEnabled=True))
    envelope = {"message": {"messageId": "m1", "data": "aGk=", "attributes": {"k": "v"}}}
    assert sensors.receive_push(ctx, T, W, "inbox", envelope)["status"] == "RECORDED"
    assert sensors.receive_push(ctx, T, W, "inbox", envelope)["status"] == "DUPLICATE"
    [task] = tasks(queue)
    assert task["items"] == [
        {"itemId": "msg:m1", "message": {"messageId": "m1", "data": "aGk=", "attributes": {"k": "v"}}}
    ]
    report(ctx, task, status="TRIGGERED", runRequests=[{"itemId": "msg:m1"}])
    assert [r["runKey"] for r in runs(ctx)] == ["sensor:inbox:msg:m1:0"]
    assert sensors.receive_push(ctx, T, W, "inbox", envelope)["status"] == "DUPLICATE"
    assert sweep_sensors(ctx, T, W)["evaluations"] == 0 and len(runs(ctx)) == 1


@pytest.mark.parametrize(
    "envelope",
    [
        {},
        {"message": {"data": "aGk="}},
        {"message": {"messageId": "bad id!", "data": ""}},
        {"message": {"messageId": "m1", "data": "not base64!"}},
        {"message": {"messageId": "m1", "data": "", "attributes": {"k": 1}}},
        {"message": "x"},
    ],
)
def test_P9_a_bad_push_envelope_is_400_and_stores_nothing(
    env: tuple[ServiceContext, FakeClock, RecordingQueue], envelope: dict[str, object]
) -> None:
    ctx, _, _ = env
    deploy(ctx, push(defaultEnabled=True))
    before = ledger_names(ctx)
    with pytest.raises(InvalidInput):
        sensors.receive_push(ctx, T, W, "inbox", envelope)
    assert ledger_names(ctx) == before


def test_P9_unknown_sensor_404_not_push_400_foreign_principal_401(tmp_path: Path) -> None:
    ctx, _, _ = make_context(tmp_path, push_service_account="push@p.iam.gserviceaccount.com")
    deploy(ctx, push(defaultEnabled=True), poll())
    envelope = {"message": {"messageId": "m1", "data": ""}}
    with pytest.raises(NotFound):
        sensors.receive_push(ctx, T, W, "nope", envelope)
    with pytest.raises(InvalidInput):
        sensors.receive_push(ctx, T, W, "files", envelope)
    import base64
    import json

    def token(email: str) -> str:
        claims = base64.urlsafe_b64encode(json.dumps({"email": email}).encode()).decode().rstrip("=")
        return f"Bearer e30.{claims}.sig"

    with pytest.raises(Unauthorized):
        sensors.check_push_principal(ctx, {"authorization": token("other@p.iam.gserviceaccount.com")})
    with pytest.raises(Unauthorized):
        sensors.check_push_principal(ctx, {})
    sensors.check_push_principal(ctx, {"authorization": token("push@p.iam.gserviceaccount.com")})


def test_a_message_over_256_kib_is_failed_and_never_evaluated(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    import base64

    ctx, _, queue = env
    deploy(ctx, push(defaultEnabled=True))
    big = base64.b64encode(b"x" * (256 * 1024 + 1)).decode()
    assert (
        sensors.receive_push(ctx, T, W, "inbox", {"message": {"messageId": "m", "data": big}})["status"]
        == "FAILED"
    )
    assert tasks(queue) == []


def test_P13_no_result_past_the_timeout_gives_attempt_2_and_the_late_first_still_competes(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, clock, queue = env
    deploy(ctx, poll(defaultEnabled=True, timeoutSeconds=10))
    sweep_sensors(ctx, T, W)
    [first] = tasks(queue)
    clock.advance(71 * SECOND)
    sweep_sensors(ctx, T, W)
    [second] = tasks(queue)
    assert second["evaluationId"] == "files:v0:2"
    report(ctx, first, status="TRIGGERED", runRequests=[{"runKey": "late"}])
    report(ctx, second, status="TRIGGERED", runRequests=[{"runKey": "late"}])
    statuses = {e["evaluationId"]: e["status"] for e in evaluations(ctx)}
    assert statuses == {"files:v0:1": "TRIGGERED", "files:v0:2": "SKIPPED_STALE", "files:v1:1": "PENDING"}
    assert len(runs(ctx)) == 1


def test_P10_messages_arriving_during_an_evaluation_are_taken_by_the_next_in_order(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, _, queue = env
    deploy(ctx, push(defaultEnabled=True))
    sensors.receive_push(ctx, T, W, "inbox", {"message": {"messageId": "m0", "data": ""}})
    [first] = tasks(queue)
    for m in ("m1", "m2", "m3"):
        sensors.receive_push(ctx, T, W, "inbox", {"message": {"messageId": m, "data": ""}})
    assert tasks(queue) == []  # one scheduled evaluation in flight at most
    report(ctx, first)
    sweep_sensors(ctx, T, W)
    [second] = tasks(queue)
    assert [i["itemId"] for i in second["items"]] == ["msg:m1", "msg:m2", "msg:m3"]


def test_P8_evaluations_list_newest_first_filtered_by_status_and_time_and_show_has_cursor_and_version(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, clock, queue = env
    deploy(ctx, poll(defaultEnabled=True))
    for status in ("SKIPPED", "ERROR", "SKIPPED"):
        report(ctx, tasks(queue)[0], status=status)  # each requests the next after commit
        clock.advance(31 * SECOND)
    listed = evaluations(ctx)[1:]  # the newest is the next one, PENDING
    assert [e["evaluationId"] for e in listed] == ["files:v1:2", "files:v1:1", "files:v0:1"]
    assert [e["status"] for e in evaluations(ctx, status="ERROR")] == ["ERROR"]
    # Each requested when the result before it was committed: v0:1 and v1:1 at once, v1:2 31 s later.
    since, until = listed[0]["requestedAt"], listed[1]["requestedAt"]
    assert [e["evaluationId"] for e in evaluations(ctx, since=since)] == ["files:v2:1", "files:v1:2"]
    assert [e["evaluationId"] for e in evaluations(ctx, until=until)] == ["files:v1:1", "files:v0:1"]
    page = sensors.list_evaluations(ctx, T, W, "files", {"limit": "3"})
    rest = sensors.list_evaluations(ctx, T, W, "files", {"cursor": page["nextCursor"]})
    assert [e["evaluationId"] for e in rest["evaluations"]] == ["files:v0:1"]
    shown = show(ctx)
    assert shown["stateVersion"] == 2 and shown["lastEvaluationStatus"] == "SKIPPED" and "cursor" not in shown
    for bad in ({"status": "NOPE"}, {"since": "yesterday"}, {"limit": "0"}, {"cursor": "%%"}):
        with pytest.raises(InvalidInput):
            sensors.list_evaluations(ctx, T, W, "files", bad)


def test_P11_a_failed_run_is_one_item_for_a_failed_run_status_sensor_whose_request_runs(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, _, queue = env
    run_id = sweep_after_a_failed_run(
        ctx,
        queue,
        run_status(defaultEnabled=True, target=["ns.b"]),
        run_status("on_success", runStatus=["SUCCEEDED"], defaultEnabled=True),
    )
    answer = {"runId": run_id}
    [task] = [t for t in tasks(queue)]
    assert task["sensorId"] == "on_failure"
    [item] = task["items"]
    assert item["itemId"] == f"run:{answer['runId']}" and item["run"]["state"] == "FAILED"
    report(ctx, task, status="TRIGGERED", runRequests=[{"itemId": item["itemId"]}])
    keys = sorted(str(r["runKey"]) for r in runs(ctx) if r.get("runKey"))
    assert keys == [f"sensor:on_failure:run:{answer['runId']}:0"]
    sweep_sensors(ctx, T, W)
    assert tasks(queue) == []  # the item is DONE: never called twice for one run


def _ledger_events(ctx: ServiceContext) -> list[Any]:
    from servo.services._compaction_ledger import read_events

    return read_events(ctx.workspace_store(T, W), ledger_names(ctx), T, W).events


def test_P4_the_cursor_goes_v0_v1_v2_with_deterministic_keys_and_a_rebuild_agrees(
    env: tuple[ServiceContext, FakeClock, RecordingQueue], tmp_path: Path
) -> None:
    from servo.core.sensor_rows import table_rows
    from servo.services.sensor_projection import rebuild_sensors, refresh_sensors

    ctx, clock, queue = env
    deploy(ctx, poll(defaultEnabled=True))
    for version, cursor in ((0, "c1"), (1, "c2")):
        sweep_sensors(ctx, T, W)
        [task] = tasks(queue)
        assert task["evaluationId"] == f"files:v{version}:1"
        report(ctx, task, status="TRIGGERED", cursorUpdated=True, cursor=cursor, runRequests=[{}])
        clock.advance(31 * SECOND)
    assert show(ctx)["cursor"] == "c2" and show(ctx)["stateVersion"] == 2
    assert sorted(str(r["runKey"]) for r in runs(ctx)) == ["sensor:files:v0:0", "sensor:files:v1:0"]
    rebuilt = rebuild_sensors(_ledger_events(ctx))
    assert table_rows(rebuilt) == table_rows(refresh_sensors(ctx, T, W))
    view = rebuilt.view("files")
    assert view is not None and view.cursor == "c2" and view.state_version == 2
    # Another instance (no cache) reads the same published tables.
    fresh = make_context(Path(str(ctx.settings.data_dir)))[0]
    assert table_rows(refresh_sensors(fresh, T, W)) == table_rows(rebuilt)


def test_P6_ten_seconds_after_an_evaluation_none_is_due_and_after_31_one_also_after_a_rebuild(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    from servo.core.sensor_fold import next_evaluation
    from servo.core.sensors import parse_sensor
    from servo.services.sensor_projection import rebuild_sensors

    ctx, clock, queue = env
    report(ctx, first_poll(ctx, queue))
    reported = clock.now_ms
    [requested] = tasks(queue)  # by the compactor after commit, for when it is due
    # The due decision from the ledger as the sweep would see it without that request, rebuilt.
    events = [e for e in _ledger_events(ctx) if getattr(e.data, "evaluation_id", "") != "files:v1:1"]
    rebuilt = rebuild_sensors(events).view("files")
    assert rebuilt is not None
    spec = parse_sensor(poll(defaultEnabled=True))
    clock.advance(10 * SECOND)
    assert next_evaluation(rebuilt, spec, now_ms=clock.now_ms, first_seen_at_ms=0) is None
    clock.advance(21 * SECOND)
    plan = next_evaluation(rebuilt, spec, now_ms=clock.now_ms, first_seen_at_ms=0)
    assert plan is not None and plan.not_before == reported + 30 * SECOND
    assert requested["evaluationId"] == plan.evaluation_id == "files:v1:1"
    assert requested["scheduleTimeMs"] == plan.not_before


def test_a_run_status_sensor_of_other_assets_gets_no_item_for_a_failed_run(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, _, queue = env
    sweep_after_a_failed_run(
        ctx,
        queue,
        run_status("watch_b", defaultEnabled=True, monitoredAssets=["ns.b"]),
        run_status("watch_a", defaultEnabled=True, monitoredAssets=["ns.a"]),
    )
    assert [t["sensorId"] for t in tasks(queue)] == ["watch_a"]
    assert show(ctx, "watch_b")["pendingItems"] == 0


def test_a_result_applied_while_a_rival_of_its_version_is_pending_starts_runs_only_once_settled(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    """The rival's result can still land with a smaller event id and take the step (a slow write): runs
    wait until no rival of the version is pending, or until the result is older than a write's window."""
    from servo.core.events import SensorEvaluated, make_event
    from servo.core.fingerprints import request_fingerprint
    from servo.services.ledger import append_events

    ctx, clock, queue = env
    first_poll(ctx, queue)
    sensors.evaluate_sensor(ctx, T, W, "files", {}, "k")
    tasks(queue)
    request = {
        "request_id": "eval:files:v0:1:0",
        "run_key": "sensor:files:a",
        "selection": ["ns.a"],
        "labels": {},
        "request_fingerprint": request_fingerprint(["ns.a"], False, False, None, {}),
    }
    late = make_event(
        SensorEvaluated("files", "files:v0:1", 0, "POLL", "TRIGGERED", run_requests=(request,)),
        event_id=ctx.ids.new(clock.now_ms),  # stamped before the manual result, written after it
        timestamp_ms=clock.now_ms,
        tenant_id=T,
        workspace_id=W,
    )
    manual = {"evaluationId": "files:manual:k", "evaluationToken": _token(ctx, "files:manual:k")}
    report(ctx, manual, status="TRIGGERED", runRequests=[{"runKey": "b"}])
    assert runs(ctx) == []  # applied in this view, but the scheduled one of v0 may still win
    assert tasks(queue) == []  # nor is the next evaluation requested from a step still unsettled
    append_events(ctx, T, W, [late])
    sweep_sensors(ctx, T, W)
    statuses = {e["evaluationId"]: e["status"] for e in evaluations(ctx)}
    # The scheduled result took the step: the next evaluation is requested from it, after commit.
    assert statuses == {"files:v0:1": "TRIGGERED", "files:manual:k": "SKIPPED_STALE", "files:v1:1": "PENDING"}
    assert [t["cursor"] for t in tasks(queue)] == [None]
    assert [r["runKey"] for r in runs(ctx)] == ["sensor:files:a"]


def test_an_applied_result_whose_rival_never_reports_runs_once_older_than_a_writes_window(
    env: tuple[ServiceContext, FakeClock, RecordingQueue],
) -> None:
    ctx, clock, queue = env
    first_poll(ctx, queue)
    sensors.evaluate_sensor(ctx, T, W, "files", {}, "k")
    [manual] = tasks(queue)
    report(ctx, manual, status="TRIGGERED", runRequests=[{"runKey": "m"}])
    assert runs(ctx) == []
    clock.advance(11 * SECOND)
    sweep_sensors(ctx, T, W)
    assert [r["runKey"] for r in runs(ctx)] == ["sensor:files:m"]


def _token(ctx: ServiceContext, evaluation_id: str) -> str:
    from servo.tokens import issue_evaluation_token

    return issue_evaluation_token(
        ctx.settings.token_secret,
        tenant_id=T,
        workspace_id=W,
        sensor_id=evaluation_id.split(":")[0],
        evaluation_id=evaluation_id,
        state_version=0,
        now_s=ctx.clock_ms() // 1000,
        timeout_s=60,
    )
