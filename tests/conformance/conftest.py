"""Prints the schemathesis seed and how many cases it sent (issue 22: both must show in `make test`)."""

from __future__ import annotations

from tests.support.faults import Tally

SEED = 22022
MAX_EXAMPLES = 12

TALLY = Tally(f"schemathesis cases, seed {SEED}, max-examples {MAX_EXAMPLES}")

pytest_sessionfinish = TALLY.sessionfinish
pytest_terminal_summary = TALLY.terminal_summary
