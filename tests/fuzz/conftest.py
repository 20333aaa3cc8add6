"""Prints how many fuzzed requests the suite sent (issue 7: the count must show in `make test`)."""

from __future__ import annotations

from tests.support.faults import Tally

TALLY = Tally("fuzz requests sent")

requests_sent = TALLY.fixture("requests_sent", "fuzz_requests", "requests sent")
pytest_sessionfinish = TALLY.sessionfinish
pytest_terminal_summary = TALLY.terminal_summary
