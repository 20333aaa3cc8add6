"""serve_worker over a project folder, the Cloud Run entry, and partition keys from the envelope."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests
from servo.core.errors import InvalidInput
from servo.sdk import DailyPartitions, asset, code_version
from servo.worker import serve_worker, wsgi_app_from_env

from tests.worker.conftest import SECRET, TENANT, WORKSPACE, Serve, dispatch, envelope, task_id
from tests.worker.fake_control_plane import FakeControlPlane

ran: list[str] = []
OTHER_VERSION = "src-0123456789abcdef01234567"  # a digest of code this worker does not hold


@asset(namespace="demo", partitions=DailyPartitions("date"))
def daily(ctx: Any) -> dict[str, Any]:
    ran.append(ctx.partition_key.canonical)
    return {"partition": ctx.partition_key.canonical}


def _project(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "__init__.py").write_text("")
    (tmp_path / "assets" / "chain.py").write_text(
        textwrap.dedent(
            """
            from servo.sdk import asset

            @asset(namespace="proj")
            def first(ctx):
                print("first ran in", ctx.run_id)
                return {"n": 1}
            """
        )
    )
    return tmp_path


def test_serve_worker_discovers_and_runs_the_projects_assets(tmp_path: Path, plane: FakeControlPlane) -> None:
    handle = serve_worker(
        _project(tmp_path),
        dispatch_secret=SECRET,
        worker_id="dev-worker",
        tenant_id=TENANT,
        workspace_id=WORKSPACE,
        api_url=plane.url,
        heartbeat_interval_s=0.05,
    )
    try:
        assert sorted(handle.app.assets) == ["proj.first"]
        assert requests.get(f"{handle.url}/health", timeout=5).text == "ok"
        response = dispatch(handle, envelope(plane, "proj.first"))
        assert response.json()["outcome"] == "SUCCEEDED"
        assert "first ran in" in plane.output()
        assert plane.of("completed")[0].body["workerId"] == "dev-worker"
    finally:
        handle.stop()


def test_a_task_of_code_the_worker_does_not_hold_is_refused(tmp_path: Path, plane: FakeControlPlane) -> None:
    project = _project(tmp_path)
    held = code_version(project)
    handle = serve_worker(project, dispatch_secret=SECRET, api_url=plane.url, heartbeat_interval_s=0.05)
    try:
        dispatch(
            handle, envelope(plane, "proj.first", payload={"codeVersion": "src-0123456789abcdef01234567"})
        )
    finally:
        handle.stop()
    completed = plane.of("completed")[0].body
    assert (completed["outcome"], completed["error"]["category"]) == ("FAILED", "CONFIGURATION")
    assert (
        held in completed["error"]["message"]
        and "src-0123456789abcdef01234567" in completed["error"]["message"]
    )
    assert completed["error"]["retryable"] is False
    assert plane.output() == ""  # nothing ran


def test_a_code_version_named_by_another_client_is_taken_on_trust(
    tmp_path: Path, plane: FakeControlPlane
) -> None:
    handle = serve_worker(_project(tmp_path), dispatch_secret=SECRET, api_url=plane.url)
    try:
        body = envelope(plane, "proj.first", payload={"codeVersion": "git-4f2a9c1"})
        assert dispatch(handle, body).json()["outcome"] == "SUCCEEDED"
    finally:
        handle.stop()


def test_a_reloading_worker_runs_the_code_a_task_was_deployed_with(
    tmp_path: Path, plane: FakeControlPlane
) -> None:
    project = _project(tmp_path)
    handle = serve_worker(
        project, dispatch_secret=SECRET, api_url=plane.url, heartbeat_interval_s=0.05, reload=True
    )
    try:
        chain = project / "assets" / "chain.py"
        chain.write_text(chain.read_text().replace("first ran in", "edited first ran in"))
        (project / "assets" / "more.py").write_text(
            'from servo.sdk import asset\n\n@asset(namespace="proj")\ndef second(ctx):\n    print("second")\n'
        )
        deployed = code_version(project)
        for key in ("proj.first", "proj.second"):
            body = envelope(plane, key, payload={"codeVersion": deployed})
            assert dispatch(handle, body).json()["outcome"] == "SUCCEEDED"
        assert handle.app.code_version == deployed
    finally:
        handle.stop()
    assert "edited first ran in" in plane.output(task_id("proj.first"))
    assert plane.output(task_id("proj.second")) == "second\n"


def test_wsgi_app_from_env_reads_the_project_and_secret(tmp_path: Path) -> None:
    app = wsgi_app_from_env(
        {
            "SERVO_PROJECT_DIR": str(_project(tmp_path)),
            "SERVO_DISPATCH_SECRET": SECRET,
            "SERVO_WORKER_ID": "run-1",
        }
    )
    assert sorted(app.assets) == ["proj.first"]
    assert app.config.worker_id == "run-1"
    client = app.flask.test_client()
    assert client.get("/health").data == b"ok"
    assert client.post("/dispatch", json={}, headers={"X-Servo-Dispatch-Secret": "x"}).status_code == 401


def test_wsgi_app_from_env_requires_a_secret(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="SERVO_DISPATCH_SECRET"):
        wsgi_app_from_env({"SERVO_PROJECT_DIR": str(tmp_path)})


def test_partition_key_reaches_the_context(serve: Serve, plane: FakeControlPlane) -> None:
    worker = serve({"demo.daily": daily})
    response = dispatch(worker, envelope(plane, "demo.daily", partition_key="date=d:2025-01-15"))
    assert response.json()["outcome"] == "SUCCEEDED", plane.calls
    assert plane.of("completed")[0].body["output"]["metadata"] == {"partition": "date=d:2025-01-15"}


def test_partitioned_asset_without_partition_key_fails_as_configuration_without_running(
    serve: Serve, plane: FakeControlPlane
) -> None:
    ran.clear()
    worker = serve({"demo.daily": daily})
    assert dispatch(worker, envelope(plane, "demo.daily")).json()["outcome"] == "FAILED"
    error = plane.of("completed")[0].body["error"]
    assert error["category"] == "CONFIGURATION"
    assert error["retryable"] is False
    assert ran == []
