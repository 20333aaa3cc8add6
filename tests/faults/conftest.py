"""Prints how many faults the suite injected (issue 7: the count must show in `make test`)."""

from __future__ import annotations

from tests.support.faults import Tally

TALLY = Tally("faults injected")

faults_injected = TALLY.fixture("faults_injected", "faults_injected", "faults injected")
pytest_sessionfinish = TALLY.sessionfinish
pytest_terminal_summary = TALLY.terminal_summary
