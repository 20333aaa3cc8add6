"""Prints how many fuzzed requests the suite sent (issue 7: the count must show in `make test`)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from tests.support.faults import Tally

TALLY = Tally("fuzz requests sent")


@pytest.fixture
def requests_sent(record_property: Callable[[str, object], None]) -> Callable[[int, str], None]:
    """Call with the number of requests a test sent and what it targeted; printed and tallied."""

    def record(n: int, label: str) -> None:
        record_property("fuzz_requests", n)
        print(f"{label}: requests sent: {n}")
        TALLY.add(n)

    return record


def pytest_sessionfinish(session: pytest.Session) -> None:
    worker = getattr(session.config, "workerinput", {}).get("workerid")
    if worker is None or not TALLY.tests:
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        sys.stderr.write(f"\n{TALLY.line(worker)}\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.tests:
        terminalreporter.write_line(TALLY.line(None))
