"""GetRun / ListRuns / cancel through their functions (behavior §10, scenarios 26–27, 42–43)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from servo.http.runtime import override_context
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import FakeClock, make_context

ROOT = Path(__file__).resolve().parents[2]
WS = "prod"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[ServiceContext, FakeClock, Any, Any]]:
    ctx, clock, _ = make_context(tmp_path)
    body = manifest(asset("ns.a"), asset("ns.b", "ns.a"))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    with override_context(ctx):
        runs = create_app("runs", str(ROOT / "functions/runs/main.py")).test_client()
        cancel = create_app("cancel", str(ROOT / "functions/cancel/main.py")).test_client()
        yield ctx, clock, runs, cancel


def new_run(ctx: ServiceContext, clock: FakeClock, **body: Any) -> str:
    clock.advance(1000)
    status, res = trigger_run(ctx, "default", WS, {"selection": ["ns.a"], **body})
    assert status == 201
    return str(res["runId"])


def test_get_run_shows_tasks_counts_and_public_states(env: Any) -> None:
    ctx, clock, runs, _ = env
    run_id = new_run(ctx, clock, includeDownstream=True, labels={"team": "data"})
    res = runs.get(f"/v1/workspaces/{WS}/runs/{run_id}")
    assert res.status_code == 200
    body = res.get_json()
    assert body["runId"] == run_id and body["workspaceId"] == WS and body["labels"] == {"team": "data"}
    assert body["state"] in ("RUNNING", "PENDING")
    assert [t["taskKey"] for t in body["tasks"]] == ["ns.a", "ns.b"]
    assert body["tasks"][1]["state"] == "PENDING"
    assert body["taskCounts"]["total"] == 2
    assert "completedAt" not in body


def test_unknown_run_is_404_and_bad_run_id_is_400(env: Any) -> None:
    _, _, runs, _ = env
    assert runs.get(f"/v1/workspaces/{WS}/runs/01JDZZZZZZZZZZZZZZZZZZZZZZ").status_code == 404
    assert runs.get(f"/v1/workspaces/{WS}/runs/..").status_code in (400, 404)


def test_list_runs_pages_newest_first_with_a_cursor(env: Any) -> None:
    ctx, clock, runs, _ = env
    ids = [new_run(ctx, clock) for _ in range(5)]
    first = runs.get(f"/v1/workspaces/{WS}/runs?limit=2").get_json()
    assert [r["runId"] for r in first["runs"]] == ids[::-1][:2]
    second = runs.get(f"/v1/workspaces/{WS}/runs?limit=2&cursor={first['nextCursor']}").get_json()
    assert [r["runId"] for r in second["runs"]] == ids[::-1][2:4]
    third = runs.get(f"/v1/workspaces/{WS}/runs?limit=2&cursor={second['nextCursor']}").get_json()
    assert [r["runId"] for r in third["runs"]] == ids[:1] and "nextCursor" not in third


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "cursor=%%%", "state=NOPE"])
def test_bad_list_parameters_are_400(env: Any, query: str) -> None:
    _, _, runs, _ = env
    assert runs.get(f"/v1/workspaces/{WS}/runs?{query}").status_code == 400


def test_cancel_queued_run_is_cancelled_repeat_is_200_and_terminal_is_409(env: Any) -> None:
    ctx, clock, runs, cancel = env
    run_id = new_run(ctx, clock, includeDownstream=True)
    res = cancel.post(f"/v1/workspaces/{WS}/runs/{run_id}/cancel", json={"reason": "not needed"})
    assert res.status_code == 200 and res.get_json()["state"] == "CANCELLED"
    again = cancel.post(f"/v1/workspaces/{WS}/runs/{run_id}/cancel", json={})
    assert again.status_code == 200
    body = runs.get(f"/v1/workspaces/{WS}/runs/{run_id}").get_json()
    assert body["state"] == "CANCELLED" and {t["state"] for t in body["tasks"]} == {"CANCELLED"}
    assert body["taskCounts"]["cancelled"] == 2


def test_cancel_unknown_run_is_404_and_bad_body_is_400(env: Any) -> None:
    ctx, clock, _, cancel = env
    assert (
        cancel.post(f"/v1/workspaces/{WS}/runs/01JDZZZZZZZZZZZZZZZZZZZZZZ/cancel", json={}).status_code == 404
    )
    run_id = new_run(ctx, clock)
    assert cancel.post(f"/v1/workspaces/{WS}/runs/{run_id}/cancel", json={"reason": 5}).status_code == 400


def test_logs_of_a_run_without_logs_is_404(env: Any) -> None:
    ctx, clock, runs, _ = env
    run_id = new_run(ctx, clock)
    assert runs.get(f"/v1/workspaces/{WS}/runs/{run_id}/logs").status_code == 404
