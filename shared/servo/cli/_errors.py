"""The CLI's one error type: everything a user can cause ends as ``error: <one line>`` and exit 1."""

from __future__ import annotations


class CliError(Exception):
    """A failure to report as one line on stderr (no traceback unless ``--verbose``)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
