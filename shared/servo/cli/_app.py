"""The ``servo`` command group: global flags, shared API options, and one-line error handling."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from servo.cli._client import ApiClient
from servo.cli._config import Config, resolve_config
from servo.cli._errors import CliError

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass
class State:
    """What every command gets through ``click.pass_obj``."""

    verbose: bool = False

    @property
    def out(self) -> Console:
        console = Console(highlight=False, soft_wrap=False)
        if not console.is_terminal:
            # Piped output is read by scripts and people alike: never cut an id to fit 80 columns.
            console.width = max(console.width, 200)
        return console

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False)


def _package_version() -> str:
    try:
        return version("servo")
    except PackageNotFoundError:
        return "0+unknown"


class _Failed(click.ClickException):
    """Printed as ``error: <line>`` (click's default is ``Error: ...`` plus usage for usage errors)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        # Several problems (e.g. validation) are several lines, each one complete on its own.
        for line in self.message.splitlines() or [""]:
            click.echo(f"error: {line}", err=True)


class ServoGroup(click.Group):
    """Turns every failure into one stderr line and exit 1; ``--verbose`` adds the traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("prog_name", "servo")
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "servo"
            raise _Failed(f"{exc.format_message()} (see `{command} --help`)") from None
        except (click.ClickException, click.Abort):
            raise
        except CliError as exc:
            _maybe_traceback(ctx)
            raise _Failed(exc.line()) from None
        except KeyboardInterrupt:
            raise _Failed("interrupted") from None
        except Exception as exc:
            _maybe_traceback(ctx)
            from servo.core.errors import ServoError

            message = exc.message if isinstance(exc, ServoError) else f"{type(exc).__name__}: {exc}"
            raise _Failed(message) from None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _Failed(f"{exc.format_message()} (see `servo --help`)") from None


def _maybe_traceback(ctx: click.Context) -> None:
    state = ctx.find_object(State)
    if state is not None and state.verbose:
        traceback.print_exc(file=sys.stderr)


@click.group("servo", cls=ServoGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(
    _package_version(), "-V", "--version", prog_name="servo", message="%(prog)s %(version)s"
)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and request details on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Servo: asset-first data orchestration on serverless Google Cloud.

    \b
    Quick start:
      servo init my_project && cd my_project
      servo dev                      # local stack, in another terminal
      servo deploy
      servo run my_project.raw --include-downstream --wait
      servo status                   # recent runs
      servo logs RUN_ID --follow

    Shell completion (asset keys, run ids): add to ~/.bashrc
      eval "$(_SERVO_COMPLETE=bash_source servo)"
    (zsh: zsh_source in ~/.zshrc; fish: fish_source in ~/.config/fish/completions/servo.fish).

    Configuration: flags > SERVO_API_URL / SERVO_WORKSPACE / SERVO_TENANT / SERVO_TOKEN >
    servo.toml [api] (url, workspace, tenant) > defaults (http://127.0.0.1:8080, "default").
    """
    ctx.obj = State(verbose=verbose)


def api_options(func: F) -> F:
    """The options every command that talks to the API shares (they override env and servo.toml)."""
    options = [
        click.option("--project", "project", type=click.Path(file_okay=False, path_type=Path),
                     help="Project directory (default: nearest folder with servo.toml)."),
        click.option("--api-url", envvar=None, help="Servo API base URL [env SERVO_API_URL]."),
        click.option("-w", "--workspace", help="Workspace id [env SERVO_WORKSPACE]."),
        click.option("--tenant", help="Tenant id [env SERVO_TENANT]."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def config_from(kwargs: dict[str, Any]) -> Config:
    """Pop the shared API options out of a command's kwargs and resolve the config."""
    flags = {name: kwargs.pop(name, None) for name in ("api_url", "workspace", "tenant")}
    return resolve_config(flags, project=kwargs.pop("project", None))


def client_from(kwargs: dict[str, Any]) -> ApiClient:
    return ApiClient(config_from(kwargs))


def register_commands() -> None:
    from servo.cli._commands import (
        assets,
        backfills,
        dev,
        logs,
        project,
        rerun,
        runs,
        schedules,
        sensors,
    )

    for module in (project, runs, rerun, logs, dev, schedules, sensors, backfills, assets):
        for command in module.COMMANDS:
            cli.add_command(command)
