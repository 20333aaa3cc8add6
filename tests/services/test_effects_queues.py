"""Where the controller's Cloud Tasks go and whom their OIDC tokens are for: due timers on their own
queue (a dispatch backlog must not delay them), each token's audience the target service's URL."""

from __future__ import annotations

from pathlib import Path

from servo.core import controller as ctl
from servo.services.effects import _timer

from tests.support.context import make_context

TIMERS = "https://servo-timers-123456789012.us-central1.run.app"
TIMER = ctl.ScheduleTimer("timer:retry:run_1:a.b:1:0", "RETRY", "run_1", "a.b", 1, 1_700_000_000_000)


def test_a_timer_goes_to_the_timers_queue(tmp_path: Path) -> None:
    ctx, _, queue = make_context(
        tmp_path, queue="servo-dispatch", timers_queue="servo-timers", timers_url=f"{TIMERS}/v1/timers/fire"
    )
    _timer(ctx, "default", "prod", TIMER)
    [(name, task)] = queue.tasks
    assert name == "servo-timers"
    assert task.url == f"{TIMERS}/v1/timers/fire"


def test_without_a_timers_queue_timers_share_the_dispatch_queue(tmp_path: Path) -> None:
    ctx, _, queue = make_context(tmp_path, queue="servo-dispatch")
    _timer(ctx, "default", "prod", TIMER)
    assert [name for name, _ in queue.tasks] == ["servo-dispatch"]


def test_the_oidc_audience_is_the_run_app_service_url(tmp_path: Path) -> None:
    ctx, _, queue = make_context(
        tmp_path,
        timers_url=f"{TIMERS}/v1/timers/fire",
        tasks_service_account="servo-tasks@p.iam.gserviceaccount.com",
    )
    _timer(ctx, "default", "prod", TIMER)
    [(_, task)] = queue.tasks
    assert task.oidc_audience == TIMERS
