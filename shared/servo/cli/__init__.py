"""The ``servo`` command line (console script ``servo = servo.cli:main``)."""

from __future__ import annotations

from servo.cli._app import cli, register_commands

register_commands()


def main() -> None:
    """Entry point of the ``servo`` console script."""
    cli.main()


__all__ = ["cli", "main"]
