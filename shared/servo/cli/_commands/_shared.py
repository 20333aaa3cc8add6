"""What the automation command groups (schedules, sensors, backfills, assets) print alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click

from servo.cli._app import State, api_options, client_from
from servo.cli._client import ApiClient
from servo.cli._commands.runs import print_json

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON only.")


def print_fields(state: State, lines: Iterable[tuple[str, str]]) -> None:
    """A `show` command's labelled lines, labels aligned."""
    for name, value in lines:
        state.out.print(f"[bold]{name + ':':<12}[/bold]{value}")


def add_toggle_commands(
    group: click.Group,
    noun: str,
    set_enabled: Callable[[ApiClient, str, bool], dict[str, Any]],
    version_field: str,
    docs: tuple[str, str],
) -> None:
    """Register `<group> enable ID` and `<group> disable ID`: one command but for the flag it sets.

    ``version_field`` names the answer's version (statusVersion, stateVersion); ``docs`` the enable and
    disable help texts.
    """
    version_words = "".join(f" {c.lower()}" if c.isupper() else c for c in version_field)

    def make(enabled: bool) -> Callable[..., None]:
        def command(state: State, definition_id: str, as_json: bool, **kwargs: Any) -> None:
            answer = set_enabled(client_from(kwargs), definition_id, enabled)
            if as_json:
                print_json(answer)
                return
            word = "enabled" if answer["enabled"] else "disabled"
            already = "" if answer["changed"] else " (it already was)"
            state.out.print(
                f"{noun} [bold]{definition_id}[/bold] {word}{already}; "
                f"{version_words} {answer[version_field]}."
            )

        return command

    argument = click.argument("definition_id", metavar=f"{noun.upper()}_ID")
    for name, enabled, doc in (("enable", True, docs[0]), ("disable", False, docs[1])):
        group.command(name, help=doc)(click.pass_obj(api_options(JSON_OPTION(argument(make(enabled))))))
