"""What the worker refuses before asset code runs: auth, malformed or foreign envelopes, stale attempts."""

from __future__ import annotations

import requests
from servo.sdk import asset

from tests.worker.conftest import SECRET, Serve, dispatch, envelope, task_id
from tests.worker.fake_control_plane import FakeControlPlane


@asset(namespace="demo", name="a")
def _never(ctx: object) -> None:
    raise AssertionError("must not run")


def test_health_answers_ok(serve: Serve) -> None:
    worker = serve({})
    response = requests.get(f"{worker.url}/health", timeout=5)
    assert response.status_code == 200
    assert response.text == "ok"


def test_wrong_or_missing_secret_is_401_and_nothing_is_called(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve({})
    body = envelope(plane, "demo.a")
    assert dispatch(worker, body, secret="nope").status_code == 401
    assert dispatch(worker, body, secret=None).status_code == 401
    assert plane.calls == []


def test_bearer_secret_is_accepted(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve({})
    response = requests.post(
        f"{worker.url}/dispatch",
        json=envelope(plane, "demo.missing"),
        headers={"Authorization": f"Bearer {SECRET}"},
        timeout=30,
    )
    assert response.status_code == 200


def test_an_unset_secret_rejects_everything(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve({}, dispatch_secret="")
    assert dispatch(worker, envelope(plane, "demo.a"), secret="").status_code == 401
    assert dispatch(worker, envelope(plane, "demo.a"), secret=None).status_code == 401


def test_malformed_envelopes_are_400(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve({})
    body = envelope(plane, "demo.a")
    del body["attemptId"]
    response = dispatch(worker, body)
    assert response.status_code == 400
    assert "attemptId" in response.json()["message"]
    assert dispatch(worker, [1, 2]).status_code == 400
    assert dispatch(worker, {**envelope(plane, "demo.a"), "attempt": 0}).status_code == 400
    not_json = requests.post(
        f"{worker.url}/dispatch", data=b"{", headers={"X-Servo-Dispatch-Secret": SECRET}, timeout=5
    )
    assert not_json.status_code == 400
    assert plane.calls == []


def test_scope_mismatch_is_400(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve({})
    for field, value in (
        ("tenantId", "other"),
        ("workspaceId", "other"),
        ("callbackBaseUrl", "http://evil.example"),
    ):
        response = dispatch(worker, {**envelope(plane, "demo.a"), field: value})
        assert response.status_code == 400, field
        assert field in response.json()["message"]
    assert plane.calls == []


def test_unknown_asset_is_reported_failed_configuration_not_retryable(
    serve: Serve, plane: FakeControlPlane
) -> None:
    worker = serve({})
    response = dispatch(worker, envelope(plane, "demo.missing"))
    assert response.status_code == 200
    assert plane.actions() == ["started", "completed"]
    completed = plane.of("completed")[0].body
    assert completed["outcome"] == "FAILED"
    assert completed["error"]["category"] == "CONFIGURATION"
    assert completed["error"]["retryable"] is False
    assert "demo.missing" in completed["error"]["message"]


def test_409_on_started_means_the_asset_is_not_run(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve({"demo.a": _never})
    for error in ("task_already_terminal", "attempt_already_completed", "attempt_mismatch"):
        plane.on("started", lambda call, n, e=error: (409, {"error": e, "message": "no"}))
        response = dispatch(worker, envelope(plane, "demo.a", dispatch_id=f"d-{error}"))
        assert response.status_code == 200
        assert response.json()["status"] == "skipped"
    assert set(plane.actions()) == {"started"}


def test_callbacks_carry_the_task_token_and_path(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve({})
    dispatch(worker, envelope(plane, "demo.missing"))
    started = plane.of("started")[0]
    assert started.task_id == task_id("demo.missing")
    assert started.authorization == "Bearer token-demo.missing"
    assert started.body["attempt"] == 1
    assert started.body["attemptId"] == "att-demo.missing-1"
    assert started.body["workerId"] == "worker-1"
    assert started.body["traceparent"].startswith("00-0af7651916cd43dd")
    assert started.body["startedAt"].endswith("Z")


def test_control_plane_down_on_started_is_500_so_the_queue_redelivers(
    serve: Serve, plane: FakeControlPlane
) -> None:
    worker = serve({"demo.a": _never})
    plane.on("started", lambda call, n: (503, {"error": "unavailable", "message": "down"}))
    response = dispatch(worker, envelope(plane, "demo.a"))
    assert response.status_code == 500
    assert plane.actions() == ["started", "started", "started"]
    # The dispatch was not marked done: a redelivery runs it once the control plane is back.
    plane.on("started", lambda call, n: None)
    assert dispatch(worker, envelope(plane, "demo.a")).status_code == 200
