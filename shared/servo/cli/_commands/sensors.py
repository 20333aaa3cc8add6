"""``servo sensor list|show|enable|disable|evaluations|evaluate`` (automation §8)."""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path
from typing import Any

import click

from servo.cli._app import State, api_options, client_from
from servo.cli._client import ApiClient
from servo.cli._commands._shared import JSON_OPTION, add_toggle_commands, print_fields
from servo.cli._commands.runs import print_json
from servo.cli._commands.schedules import _table, _targets
from servo.cli._errors import CliError

EVALUATION_STATUSES = ("PENDING", "TRIGGERED", "SKIPPED", "ERROR", "SKIPPED_STALE", "EXPIRED")


@click.group("sensor")
def sensor_group() -> None:
    """List, inspect, enable and disable the deployed sensors, see their evaluations, evaluate one now.

    \b
    Example:
      servo sensor list
      servo sensor enable new_files
      servo sensor evaluations new_files --status ERROR --json
      servo sensor evaluate inbox --data '{"file": "a.csv"}' --wait
    """


@sensor_group.command("list")
@JSON_OPTION
@api_options
@click.pass_obj
def list_command(state: State, as_json: bool, **kwargs: Any) -> None:
    """The workspace's sensors with kind, status, state version and last evaluation."""
    answer = client_from(kwargs).list_sensors()
    if as_json:
        print_json(answer)
        return
    table = _table("SENSOR", "KIND", "STATUS", "TARGET", "VERSION", "LAST EVALUATION", "PENDING")
    for s in answer.get("sensors", []):
        table.add_row(
            s["sensorId"],
            str((s.get("definition") or {}).get("kind")),
            s["status"],
            _targets(s),
            str(s["stateVersion"]),
            f"{s.get('lastEvaluationStatus', '-')} {s.get('lastEvaluationAt', '')}".strip(),
            str(s.get("pendingItems", 0)),
        )
    state.out.print(table if answer.get("sensors") else "No sensors deployed.")


@sensor_group.command("show")
@click.argument("sensor_id")
@JSON_OPTION
@api_options
@click.pass_obj
def show_command(state: State, sensor_id: str, as_json: bool, **kwargs: Any) -> None:
    """One sensor: definition, status, state version, cursor and last evaluation."""
    answer = client_from(kwargs).get_sensor(sensor_id)
    if as_json:
        print_json(answer)
        return
    definition = answer.get("definition") or {}
    lines = [
        ("Sensor", f"{answer['sensorId']} ({definition.get('kind')})"),
        ("Status", f"{answer['status']} (state version {answer['stateVersion']})"),
        ("Target", _targets(answer)),
        (
            "Interval",
            f"{definition.get('minimumIntervalSeconds')} s, timeout {definition.get('timeoutSeconds')} s",
        ),
        ("Cursor", answer.get("cursor", "-")),
        (
            "Last eval",
            f"{answer.get('lastEvaluationStatus', '-')} {answer.get('lastEvaluationAt', '')}".strip(),
        ),
        ("In flight", answer.get("inFlightEvaluationId", "-")),
        ("Pending", str(answer.get("pendingItems", 0))),
        ("Definition", f"version {answer['definitionVersion']}"),
    ]
    print_fields(state, lines)


add_toggle_commands(
    sensor_group,
    "Sensor",
    ApiClient.set_sensor_enabled,
    "stateVersion",
    (
        "Enable a sensor: it is evaluated from now on.",
        "Disable a sensor: no scheduled evaluation; its push messages are SKIPPED.",
    ),
)


def _evaluation_row(e: dict[str, Any]) -> tuple[str, ...]:
    runs = ", ".join(r.get("runId") or r["status"] for r in e.get("runRequests", [])) or "-"
    return (
        e["evaluationId"],
        e["trigger"],
        e["status"],
        e.get("requestedAt", "-"),
        runs,
        e.get("error") or e.get("reason") or "-",
    )


@sensor_group.command("evaluations")
@click.argument("sensor_id")
@click.option(
    "--status", type=click.Choice(EVALUATION_STATUSES, case_sensitive=False), help="Only this status."
)
@click.option("--since", help="Only evaluations requested at or after this RFC 3339 time.")
@click.option("--until", help="Only evaluations requested at or before this RFC 3339 time.")
@click.option("-n", "limit", type=click.IntRange(1, 200), default=20, show_default=True, help="How many.")
@JSON_OPTION
@api_options
@click.pass_obj
def evaluations_command(
    state: State,
    sensor_id: str,
    status: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """A sensor's evaluations, newest first, with the runs they started."""
    answer = client_from(kwargs).sensor_evaluations(
        sensor_id, limit, status=status.upper() if status else None, since=since, until=until
    )
    if as_json:
        print_json(answer)
        return
    table = _table("EVALUATION", "TRIGGER", "STATUS", "REQUESTED", "RUNS", "REASON")
    for e in answer.get("evaluations", []):
        table.add_row(*_evaluation_row(e))
    state.out.print(table if answer.get("evaluations") else f"No evaluations of {sensor_id} yet.")


def _data(value: str) -> str:
    """``--data``: the text itself, or ``@FILE``'s bytes, as the message's base64 data."""
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CliError(f"--data {value}: cannot read {path}: {exc.strerror}") from None
    else:
        raw = value.encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def _attributes(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--attribute {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out


@sensor_group.command("evaluate")
@click.argument("sensor_id")
@click.option("--data", help="Deliver a message to a push sensor: TEXT, or @FILE for a file's bytes.")
@click.option("--attribute", "attributes", multiple=True, help="A message attribute KEY=VALUE (repeatable).")
@click.option("--run", "run_id", help="Evaluate a run-status sensor for this run.")
@click.option("--wait", is_flag=True, help="Wait for the result; exit 1 unless TRIGGERED or SKIPPED.")
@click.option(
    "--timeout", type=click.IntRange(1, 3600), default=120, show_default=True, help="--wait limit (s)."
)
@JSON_OPTION
@api_options
@click.pass_obj
def evaluate_command(
    state: State,
    sensor_id: str,
    data: str | None,
    attributes: tuple[str, ...],
    run_id: str | None,
    wait: bool,
    timeout: int,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Evaluate a sensor now (also while paused); --data delivers a push message the way Pub/Sub would."""
    if run_id is not None and (data is not None or attributes):
        raise CliError("--run is for run-status sensors; --data and --attribute for push sensors, not both")
    body: dict[str, Any] = {}
    if data is not None or attributes:
        body["message"] = {"data": _data(data or ""), "attributes": _attributes(attributes)}
    if run_id is not None:
        body["runId"] = run_id
    client = client_from(kwargs)
    answer = client.evaluate_sensor(sensor_id, body, uuid.uuid4().hex)
    evaluation_id = answer["evaluationId"]
    if wait:
        deadline = time.monotonic() + timeout
        while (answer := client.sensor_evaluation(sensor_id, evaluation_id))["status"] == "PENDING":
            if time.monotonic() > deadline:
                raise CliError(f"evaluation {evaluation_id} still PENDING after {timeout} s")
            time.sleep(0.2)
    if as_json:
        print_json(answer)
    else:
        warning = answer.get("warning")
        state.out.print(
            f"Evaluation [bold]{evaluation_id}[/bold]: {answer['status']}"
            + (f" ({warning})" if warning else "")
        )
        if answer.get("error"):
            state.out.print(f"error: {answer['error']}")
    if wait and answer["status"] not in ("TRIGGERED", "SKIPPED"):
        raise SystemExit(1)


COMMANDS = (sensor_group,)
