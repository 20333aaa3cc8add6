from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servo.dev.fake_gcs import FakeGcsServer
from servo.store import CountingStore, LocalFileStore, ObjectStore
from servo.store.gcs import gcs_store_from_env

from tests.support.fake_gcs import fake_gcs, fresh_bucket

__all__ = ["fake_gcs"]


@pytest.fixture(
    params=[
        "local",
        "local-named-temp",
        pytest.param("gcs", marks=pytest.mark.emulator),
        "counting",
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """Every ObjectStore adapter, each empty; the contract suite runs once per adapter."""
    if request.param == "local":
        yield LocalFileStore(tmp_path / "data")
    elif request.param == "local-named-temp":
        # What a system without O_TMPFILE gets: every write through a named temp file and a rename.
        yield LocalFileStore(tmp_path / "data", unnamed_temp_files=False)
    elif request.param == "counting":
        yield CountingStore(LocalFileStore(tmp_path / "data"))
    else:
        server: FakeGcsServer = request.getfixturevalue("fake_gcs")
        yield gcs_store_from_env(fresh_bucket(server), server.endpoint)
