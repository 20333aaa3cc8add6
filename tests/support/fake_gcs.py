"""A session-scoped fake-gcs-server for emulator-tier tests.

Import the fixture into a test package's conftest (``from tests.support.fake_gcs import fake_gcs``) and mark
the tests that use it with ``@pytest.mark.emulator``. One server per session keeps them fast; tests isolate
themselves with ``fresh_bucket``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from servo.dev.fake_gcs import FakeGcsServer


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcsServer]:
    with FakeGcsServer() as server:
        yield server


def fresh_bucket(server: FakeGcsServer, stem: str = "t") -> str:
    """Create and return a new, empty bucket with a unique name."""
    name = f"{stem}-{uuid.uuid4().hex[:24]}"
    server.create_bucket(name)
    return name
