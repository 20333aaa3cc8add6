"""``servo dev`` (the local stack) and ``servo worker`` (a worker serving a project's assets)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from servo.cli._app import State
from servo.cli._config import find_project_dir, read_config_file
from servo.cli._errors import CliError


def _project(project: Path | None) -> tuple[Path, dict[str, Any]]:
    if project is not None:
        root = project.resolve()
        if not root.is_dir():
            raise CliError(f"project directory {root} does not exist")
        explicit = root / "servo.toml"
        return root, read_config_file(explicit) if explicit.is_file() else {}
    found, config_file = find_project_dir(Path.cwd())
    return found, read_config_file(config_file) if config_file else {}


@contextmanager
def console_logging(*, verbose: bool) -> Iterator[None]:
    """The local stack's log lines on stderr, each stamped ``HH:MM:SS`` so a delivery failure or a
    sweep's verdict can be matched with `servo status`; warnings only unless --verbose."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger()
    werkzeug = logging.getLogger("werkzeug")
    saved = (root.level, werkzeug.level)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        # One access-log line per callback drowns what matters; --verbose brings them back.
        werkzeug.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        werkzeug.setLevel(saved[1])


def _dev_setting(table: dict[str, Any], key: str, kind: type) -> Any:
    value = table.get("dev", {}).get(key)
    if value is not None and not isinstance(value, kind):
        raise CliError(f"invalid servo.toml: dev.{key} must be a {kind.__name__}")
    return value


@click.command("dev")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    envvar="SERVO_DEV_PORT",
    help="API port [env SERVO_DEV_PORT] (default: servo.toml dev.port, else 8080; 0 picks a free one).",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the local bucket lives (default .servo-dev/data in the project).",
)
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project whose assets the local worker serves (default: nearest servo.toml).",
)
@click.option(
    "--emulators",
    is_flag=True,
    help="Run through fake-gcs-server, the Cloud Tasks emulator and functions-framework.",
)
@click.option(
    "--sweep-interval",
    type=click.FloatRange(0.1, 60),
    default=1.0,
    show_default=True,
    help="Seconds between timer sweeps (retries, heartbeats, cancel grace).",
)
@click.option(
    "--heartbeat-interval",
    type=click.FloatRange(0.1, 60),
    envvar="SERVO_HEARTBEAT_INTERVAL_SEC",
    hidden=True,
    help="Worker heartbeat period in seconds (default: from the task's timeout).",
)
@click.pass_obj
def dev_command(
    state: State,
    port: int | None,
    data_dir: Path | None,
    project: Path | None,
    emulators: bool,
    sweep_interval: float,
    heartbeat_interval: float | None,
) -> None:
    """Run the whole local stack in the foreground until Ctrl-C.

    Embedded mode (default): local-file bucket, inline compaction, a local dispatcher, the timer
    sweep and a worker serving this project's assets, all in one process.

    \b
    Examples:
      servo dev
      servo dev --port 9000 --data /tmp/servo-data
      SERVO_API_URL=http://127.0.0.1:9000 servo deploy   # in another terminal
    """  # fmt: skip
    from servo.dev.cli_dev import DevOptions, run_dev

    root, config = _project(project)
    if not (root / "assets").is_dir() and not (root / "src" / "assets").is_dir():
        state.err.print(f"[yellow]warning:[/yellow] no assets/ folder in {root}; the worker serves nothing")
    chosen_port = port if port is not None else (_dev_setting(config, "port", int) or 8080)
    # servo.toml's dev.data is relative to the project, not to wherever `servo dev` was started.
    data = data_dir or root / (_dev_setting(config, "data", str) or Path(".servo-dev") / "data")
    options = DevOptions(
        project_dir=root,
        data_dir=data.resolve(),
        port=chosen_port,
        sweep_interval_s=sweep_interval,
        heartbeat_interval_s=heartbeat_interval,
    )

    def announce(api_url: str) -> None:
        click.echo(f"Servo API ready at {api_url}", nl=True)
        if state.verbose or os.isatty(1):
            state.err.print(f"[dim]project {root} · data {options.data_dir} · Ctrl-C to stop[/dim]")
            if api_url != "http://127.0.0.1:8080":
                state.err.print(f"[dim]export SERVO_API_URL={api_url}[/dim]")

    try:
        with console_logging(verbose=state.verbose):
            run_dev(options, emulators=emulators, announce=announce)
    except OSError as exc:
        raise CliError(f"cannot start the local stack on port {chosen_port}: {exc.strerror or exc}") from None
    state.err.print("[dim]stopped[/dim]")


@click.command("worker")
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project whose assets to serve (default: nearest servo.toml).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8081, show_default=True, help="Port.")
@click.pass_obj
def worker_command(state: State, project: Path | None, host: str, port: int) -> None:
    """Serve this project's assets to the control plane (POST /dispatch, GET /health).

    The dispatch secret comes from SERVO_DISPATCH_SECRET (the local default matches `servo dev`).

    \b
    Examples:
      servo worker --port 8081
      servo worker --host 0.0.0.0 --port 8080     # in a container (see the Dockerfile of `servo init`)
    """
    from servo.dev.cli_dev import wait_for_signal
    from servo.settings import Settings
    from servo.worker import serve_worker

    root, _ = _project(project)
    secret = Settings.from_env().dispatch_secret
    handle = serve_worker(root, host, port, dispatch_secret=secret)
    try:
        wait_for_signal(lambda: click.echo(f"Servo worker ready at {handle.url} (project {root})"))
    finally:
        handle.stop()


COMMANDS = (dev_command, worker_command)
