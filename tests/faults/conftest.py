"""Prints how many faults the suite injected (issue 7: the count must show in `make test`)."""

from __future__ import annotations

import pytest
from servo.services import _io_pool

from tests.support.faults import Tally

TALLY = Tally("faults injected")

faults_injected = TALLY.fixture("faults_injected", "faults_injected", "faults injected")
pytest_sessionfinish = TALLY.sessionfinish
pytest_terminal_summary = TALLY.terminal_summary


@pytest.fixture(autouse=True)
def one_write_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A seed must replay the same faults: "crash at the k-th write" names one write only when a
    batch's writes go one after another (their order is otherwise the threads'). What a concurrent
    batch can leave behind (any subset of its objects) is what a crash between sequential writes
    leaves too, each object being independent."""
    monkeypatch.setattr(_io_pool, "IO_CONCURRENCY", 1)
