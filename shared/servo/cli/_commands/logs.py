"""``servo logs``: captured stdout/stderr per task attempt, printed raw (never through rich markup)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable, Iterator
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
    """(attempt log name, content after its header line) of each section of one page."""
    heads = list(_HEADER.finditer(page))
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(page)
        yield head.group(1), page[head.end() + 1 : end]


class _Printer:
    """Prints each attempt's log once, under one header, and after that only what was added to it.

    A streamed attempt grows while it runs, and a page may end inside an attempt (the next page
    repeats its header), so text is joined by attempt name before anything is printed.
    """

    def __init__(self) -> None:
        self._printed: dict[str, int] = {}

    def show(self, pages: Iterable[str]) -> None:
        texts: dict[str, str] = {}
        for page in pages:
            for name, text in split_objects(page):
                texts[name] = texts.get(name, "") + text
        for name, text in texts.items():
            done = self._printed.get(name)
            if done is None:
                _write(f"--- {name} ---\n{text}")
            elif len(text) > done:
                _write(text[done:])
            self._printed[name] = max(len(text), done or 0)


def _poll(client: ApiClient, run_id: str, task: str | None, printer: _Printer) -> None:
    try:
        pages = list(client.log_pages(run_id, task))
    except ApiError as exc:
        if exc.status == 404:
            return  # nothing uploaded yet
        raise
    printer.show(pages)


@click.command("logs")
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option(
    "-t", "--task", "task", metavar="KEY", help="Only this task's logs (its task key, e.g. demo.a)."
)
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing new output as it arrives, until the run finishes."
)
@api_options
@click.pass_obj
def logs_command(state: State, run_id: str, task: str | None, follow: bool, **kwargs: Any) -> None:
    """Print the captured output of a run's task attempts, one section per attempt.

    Output is uploaded while an attempt runs, so a running task's log is readable (and --follow
    prints it as it comes); a failed attempt's log ends with its traceback.

    \b
    Examples:
      servo logs 01JD3F...
      servo logs 01JD3F... --task demo.b
      servo logs 01JD3F... --follow
    """
    client = client_from(kwargs)
    printer = _Printer()
    if not follow:
        printer.show(client.log_pages(run_id, task))
        return
    while True:
        # Read the state before the logs: an attempt's last output is uploaded before its completion,
        # so a terminal state seen here means this pass already sees all of it.
        run_state = get_run_eventually(client, run_id).get("state")
        _poll(client, run_id, task, printer)
        if run_state in TERMINAL_RUN_STATES:
            return
        time.sleep(FOLLOW_INTERVAL_S)


COMMANDS = (logs_command,)
