"""``servo schedule list|show|enable|disable|ticks`` (automation §8)."""

from __future__ import annotations

from typing import Any

import click

from servo.cli._app import State, api_options, client_from
from servo.cli._client import ApiClient
from servo.cli._commands._shared import JSON_OPTION, add_toggle_commands, print_fields
from servo.cli._commands.runs import print_json
from servo.cli._render import plain_table as _table

TICK_STATUSES = ("TRIGGERED", "SKIPPED", "FAILED")


def _targets(schedule: dict[str, Any]) -> str:
    return ", ".join((schedule.get("definition") or {}).get("target") or []) or "-"


@click.group("schedule")
def schedule_group() -> None:
    """List, inspect, enable and disable the deployed schedules, and see their ticks.

    \b
    Example:
      servo schedule list
      servo schedule enable nightly
      servo schedule ticks nightly -n 5 --json
    """


@schedule_group.command("list")
@JSON_OPTION
@api_options
@click.pass_obj
def list_command(state: State, as_json: bool, **kwargs: Any) -> None:
    """The workspace's schedules with status, cron and next tick."""
    answer = client_from(kwargs).list_schedules()
    if as_json:
        print_json(answer)
        return
    table = _table("SCHEDULE", "STATUS", "CRON", "TIMEZONE", "TARGET", "NEXT TICK")
    for s in answer.get("schedules", []):
        definition = s.get("definition") or {}
        table.add_row(
            s["scheduleId"],
            s["status"],
            str(definition.get("cron")),
            str(definition.get("timezone")),
            _targets(s),
            s.get("nextTickAt", "-"),
        )
    state.out.print(table if answer.get("schedules") else "No schedules deployed.")


@schedule_group.command("show")
@click.argument("schedule_id")
@JSON_OPTION
@api_options
@click.pass_obj
def show_command(state: State, schedule_id: str, as_json: bool, **kwargs: Any) -> None:
    """One schedule: its definition, status, versions and last and next tick."""
    answer = client_from(kwargs).get_schedule(schedule_id)
    if as_json:
        print_json(answer)
        return
    definition = answer.get("definition") or {}
    lines = [
        ("Schedule", answer["scheduleId"]),
        ("Status", f"{answer['status']} (status version {answer['statusVersion']})"),
        ("Cron", f"{definition.get('cron')} in {definition.get('timezone')}"),
        ("Target", _targets(answer)),
        ("Partition", str(definition.get("partition", "-"))),
        ("Definition", f"version {answer['definitionVersion']}"),
        ("Last tick", answer.get("lastScheduledFor", "-")),
        ("Next tick", answer.get("nextTickAt", "-")),
    ]
    print_fields(state, lines)


add_toggle_commands(
    schedule_group,
    "Schedule",
    ApiClient.set_schedule_enabled,
    "statusVersion",
    (
        "Enable a schedule: from its next tick on, each tick starts a run.",
        "Disable a schedule: its ticks are recorded SKIPPED and never replayed on enable.",
    ),
)


@schedule_group.command("ticks")
@click.argument("schedule_id")
@click.option(
    "--status", type=click.Choice(TICK_STATUSES, case_sensitive=False), help="Only ticks in this status."
)
@click.option(
    "-n", "limit", type=click.IntRange(1, 200), default=20, show_default=True, help="How many ticks."
)
@JSON_OPTION
@api_options
@click.pass_obj
def ticks_command(
    state: State, schedule_id: str, status: str | None, limit: int, as_json: bool, **kwargs: Any
) -> None:
    """A schedule's ticks, newest first, with the run each one started."""
    answer = client_from(kwargs).schedule_ticks(schedule_id, limit, status.upper() if status else None)
    if as_json:
        print_json(answer)
        return
    table = _table("TICK", "SCHEDULED FOR", "STATUS", "REQUEST", "RUN", "REASON")
    for t in answer.get("ticks", []):
        table.add_row(
            t["tickId"],
            t["scheduledFor"],
            t["status"],
            t.get("requestStatus", "-"),
            t.get("runId", "-"),
            t.get("reason") or t.get("message") or "-",
        )
    state.out.print(table if answer.get("ticks") else f"No ticks of {schedule_id} yet.")


COMMANDS = (schedule_group,)
