"""A run's source as the API shows it (automation §4 "GetRun gains ... trigger{type, its ids}")."""

from __future__ import annotations

from servo.core.run_source import trigger_view


def test_a_schedule_run_shows_type_cron_with_its_schedule_and_tick() -> None:
    stored = {"type": "cron", "schedule_id": "nightly", "tick_id": "nightly:1736989200"}
    assert trigger_view(stored, None) == {
        "type": "cron",
        "scheduleId": "nightly",
        "tickId": "nightly:1736989200",
    }


def test_a_rerun_shows_its_parent_and_kind_flattened() -> None:
    stored = {"type": "rerun", "rerun": {"parent_run_id": "01HPARENT", "kind": "from_failure"}}
    assert trigger_view(stored, None) == {"type": "rerun", "parentRunId": "01HPARENT", "kind": "from_failure"}


def test_a_manual_run_shows_type_manual() -> None:
    assert trigger_view({"type": "manual", "user_id": "api"}, None) == {"type": "manual", "userId": "api"}


def test_a_run_recorded_before_the_trigger_was_kept_shows_its_type_only() -> None:
    assert trigger_view(None, "manual") == {"type": "manual"}
    assert trigger_view(None, None) is None
