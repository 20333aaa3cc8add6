"""A session-scoped fixed Cloud Tasks emulator (``servo.dev.tasks_emulator``) for emulator-tier tests.

Import the fixture into a test package's conftest
(``from tests.support.tasks_emulator import tasks_emulator``)
and mark the tests with ``@pytest.mark.emulator``. Queues are created on first use, so tests isolate
themselves with ``fresh_queue``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from servo.dev.tasks_emulator import TasksEmulator


@pytest.fixture(scope="session")
def tasks_emulator() -> Iterator[TasksEmulator]:
    with TasksEmulator() as emulator:
        yield emulator


def fresh_queue(stem: str = "q") -> str:
    """A queue id no other test uses."""
    return f"{stem}-{uuid.uuid4().hex[:20]}"
