"""``servo logs``: captured stdout/stderr per task attempt, printed raw (never through rich markup)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import click

from servo.cli._app import State, api_options, client_from
from servo.cli._client import TERMINAL_RUN_STATES, ApiClient, ApiError
from servo.cli._commands.runs import get_run_eventually
from servo.cli._complete import complete_run_ids

# Each log object in a page starts with this header line (services.runs.run_logs).
_HEADER = re.compile(r"^--- (logs/\S+) ---$", re.MULTILINE)
FOLLOW_INTERVAL_S = 1.0


def _write(text: str) -> None:
    sys.stdout.write(text)
    if text and not text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


def split_objects(page: str) -> Iterator[tuple[str, str]]:
    """(object name, header + content) of each log object in one page."""
    heads = list(_HEADER.finditer(page))
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(page)
        yield head.group(1), page[head.start() : end]


def _new_objects(client: ApiClient, run_id: str, task: str | None, seen: set[str]) -> list[str]:
    try:
        pages = list(client.log_pages(run_id, task))
    except ApiError as exc:
        if exc.status == 404:
            return []  # nothing uploaded yet
        raise
    fresh = []
    for page in pages:
        for name, text in split_objects(page):
            if name not in seen:
                seen.add(name)
                fresh.append(text)
    return fresh


@click.command("logs")
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option(
    "-t", "--task", "task", metavar="KEY", help="Only this task's logs (its task key, e.g. demo.a)."
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new attempts' logs until the run finishes.")
@api_options
@click.pass_obj
def logs_command(state: State, run_id: str, task: str | None, follow: bool, **kwargs: Any) -> None:
    """Print the captured stdout/stderr of a run's task attempts.

    \b
    Examples:
      servo logs 01JD3F...
      servo logs 01JD3F... --task demo.b
      servo logs 01JD3F... --follow
    """
    client = client_from(kwargs)
    if not follow:
        for page in client.log_pages(run_id, task):
            _write(page)
        return
    seen: set[str] = set()
    while True:
        # Read the state before the logs: logs are uploaded before completion, so a terminal state seen
        # here means this pass already sees every attempt's log.
        run_state = get_run_eventually(client, run_id).get("state")
        for text in _new_objects(client, run_id, task, seen):
            _write(text)
        if run_state in TERMINAL_RUN_STATES:
            return
        time.sleep(FOLLOW_INTERVAL_S)


COMMANDS = (logs_command,)
