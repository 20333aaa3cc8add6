"""The automation function's schedule routes through functions-framework's test client (S2, S13)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from servo.core.canonical_json import canonical_bytes
from servo.http.runtime import override_context
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.schedule_sweep import sweep_schedules
from servo.services.trigger import trigger_run

from tests.support.context import T0, FakeClock, make_context

ROOT = Path(__file__).resolve().parents[2]
BASE = "/v1/workspaces/prod/schedules"


def deploy(ctx: ServiceContext, *schedules: dict[str, Any]) -> None:
    body = {
        "manifestVersion": "1.0",
        "codeVersionId": f"cv{len(schedules)}",
        "assets": [{"key": "ns.a", "id": "id-a"}],
        "schedules": list(schedules),
    }
    deploy_manifest(ctx, "default", "prod", canonical_bytes(body), None)


EVERY = {"id": "every", "cron": "* * * * *", "target": ["ns.a"]}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Any, ServiceContext, FakeClock]]:
    clock = FakeClock(T0 - 1000)
    ctx, _, _ = make_context(tmp_path, clock=clock)
    with override_context(ctx):
        yield create_app("automation", str(ROOT / "functions/automation/main.py")).test_client(), ctx, clock


def test_list_show_and_the_next_tick_of_an_active_schedule(
    env: tuple[Any, ServiceContext, FakeClock],
) -> None:
    client, ctx, _ = env
    deploy(ctx, EVERY)
    listed = client.get(BASE).get_json()["schedules"]
    assert [s["scheduleId"] for s in listed] == ["every"] and listed[0]["status"] == "PAUSED"
    assert "nextTickAt" not in listed[0]
    client.post(f"{BASE}/every/enable")
    shown = client.get(f"{BASE}/every").get_json()
    assert shown["enabled"] and shown["nextTickAt"] == "2027-01-15T08:00:00Z"
    assert shown["definition"]["cron"] == "* * * * *"


def test_S2_enable_and_disable_answer_the_status_version_and_changed(
    env: tuple[Any, ServiceContext, FakeClock],
) -> None:
    client, ctx, _ = env
    deploy(ctx, EVERY)
    first = client.post(f"{BASE}/every/enable", json={})
    assert first.status_code == 200
    assert first.get_json() == {"scheduleId": "every", "enabled": True, "statusVersion": 1, "changed": True}
    assert client.post(f"{BASE}/every/enable").get_json()["changed"] is False
    assert client.post(f"{BASE}/every/disable").get_json()["statusVersion"] == 2


def enabled_and_swept(env: tuple[Any, ServiceContext, FakeClock], now_ms: int) -> Any:
    """The client, after EVERY was deployed, enabled and swept at ``now_ms``."""
    client, ctx, clock = env
    deploy(ctx, EVERY)
    client.post(f"{BASE}/every/enable")
    clock.now_ms = now_ms
    sweep_schedules(ctx, "default", "prod")
    return client


def test_S13_ticks_newest_first_with_run_key_request_status_and_run_id(
    env: tuple[Any, ServiceContext, FakeClock],
) -> None:
    client = enabled_and_swept(env, T0 + 90_000)
    ticks = client.get(f"{BASE}/every/ticks").get_json()["ticks"]
    assert [t["tickId"] for t in ticks] == ["every:1800000060", "every:1800000000"]
    assert ticks[0]["runKey"] == "sched:every:1800000060" and ticks[0]["requestStatus"] == "CREATED"
    assert ticks[0]["runId"]
    one = client.get(f"{BASE}/every/ticks/every:1800000000").get_json()
    assert one["scheduledFor"] == "2027-01-15T08:00:00Z" and one["runId"] == ticks[1]["runId"]
    assert client.get(f"{BASE}/every/ticks?status=SKIPPED").get_json()["ticks"] == []
    assert client.get(f"{BASE}/every/ticks?limit=1").get_json()["ticks"] == ticks[:1]


def test_ticks_page_newest_first_by_an_opaque_cursor_until_none_is_left(
    env: tuple[Any, ServiceContext, FakeClock],
) -> None:
    client = enabled_and_swept(env, T0 + 270_000)
    everything = client.get(f"{BASE}/every/ticks").get_json()
    assert "nextCursor" not in everything and len(everything["ticks"]) == 5
    pages, query = [], "limit=2"
    while True:
        page = client.get(f"{BASE}/every/ticks?{query}").get_json()
        pages.append([t["tickId"] for t in page["ticks"]])
        if "nextCursor" not in page:
            break
        query = f"limit=2&cursor={page['nextCursor']}"
    assert pages == [
        ["every:1800000240", "every:1800000180"],
        ["every:1800000120", "every:1800000060"],
        ["every:1800000000"],
    ]
    filtered = client.get(f"{BASE}/every/ticks?status=TRIGGERED&limit=4").get_json()
    rest = client.get(f"{BASE}/every/ticks?status=TRIGGERED&cursor={filtered['nextCursor']}").get_json()
    assert [t["tickId"] for t in rest["ticks"]] == ["every:1800000000"] and "nextCursor" not in rest


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", f"{BASE}/nope", 404),
        ("post", f"{BASE}/nope/enable", 404),
        ("get", f"{BASE}/nope/ticks", 404),
        ("get", f"{BASE}/every/ticks/every:12", 404),
        ("get", f"{BASE}/every/ticks/other:12", 404),
        ("get", f"{BASE}/every/ticks/not-a-tick", 400),
        ("get", f"{BASE}/every/ticks?status=DONE", 400),
        ("get", f"{BASE}/every/ticks?limit=0", 400),
        ("get", f"{BASE}/every/ticks?limit=201", 400),
        ("get", f"{BASE}/every/ticks?limit={'9' * 5000}", 400),
        ("get", f"{BASE}/every/ticks?limit=%C2%B2", 400),
        ("get", f"{BASE}/every/ticks?cursor=not-a-cursor", 400),
        ("get", f"{BASE}/every/ticks?cursor=e30", 400),
    ],
)
def test_unknown_ids_are_404_and_bad_filters_400_with_a_message(
    env: tuple[Any, ServiceContext, FakeClock], method: str, path: str, status: int
) -> None:
    client, ctx, _ = env
    deploy(ctx, EVERY)
    answer = getattr(client, method)(path)
    assert answer.status_code == status and answer.get_json()["message"]


def test_a_body_with_options_is_400_and_changes_nothing(env: tuple[Any, ServiceContext, FakeClock]) -> None:
    client, ctx, _ = env
    deploy(ctx, EVERY)
    assert client.post(f"{BASE}/every/enable", json={"force": True}).status_code == 400
    assert client.get(f"{BASE}/every").get_json()["statusVersion"] == 0


def test_a_removed_schedule_cannot_be_enabled(env: tuple[Any, ServiceContext, FakeClock]) -> None:
    client, ctx, _ = env
    deploy(ctx, EVERY)
    deploy(ctx)
    answer = client.post(f"{BASE}/every/enable")
    assert answer.status_code == 409 and answer.get_json()["details"]["conflictType"] == "DEFINITION_REMOVED"


def test_reading_a_workspace_without_schedules_writes_nothing(
    env: tuple[Any, ServiceContext, FakeClock],
) -> None:
    client, ctx, _ = env
    deploy(ctx)
    trigger_run(ctx, "default", "prod", {"selection": ["ns.a"]})
    assert client.get(BASE).get_json() == {"schedules": []}
    assert list(ctx.workspace_store("default", "prod").list("automation/")) == []
