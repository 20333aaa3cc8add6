"""Listing matches a brute-force model (filter, sort by UTF-8 bytes, cut) on both real adapters."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servo.core.errors import InvalidId
from servo.dev.fake_gcs import FakeGcsServer
from servo.store import ObjectStore, validate_name
from servo.store.gcs import gcs_store_from_env
from servo.store.local import LocalFileStore

from tests.support.fake_gcs import fresh_bucket

StoreFactory = Callable[[], ObjectStore]

# A tiny alphabet that still has every ordering trap: '-' (0x2D) < '/' (0x2F) < '0' < 'a' < 'é' < '日'.
_CHARS = st.sampled_from(["a", "b", "0", "-", "/", "é", "日"])
_TEXT = st.text(_CHARS, min_size=0, max_size=6)


def _valid(name: str) -> bool:
    try:
        validate_name(name)
    except InvalidId:
        return False
    return True


_NAMES = st.sets(_TEXT.filter(_valid), max_size=12)


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.emulator)])
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    if request.param == "gcs":
        server: FakeGcsServer = request.getfixturevalue("fake_gcs")
        yield lambda: gcs_store_from_env(fresh_bucket(server), server.endpoint)
        return
    counter = itertools.count()
    with tempfile.TemporaryDirectory(prefix="servo-list-") as tmp:
        yield lambda: LocalFileStore(Path(tmp) / str(next(counter)), durable=False)


def _prefix_ok(prefix: str) -> bool:
    if prefix == "":
        return True
    return _valid(prefix[:-1] if prefix.endswith("/") and len(prefix) > 1 else prefix)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=_NAMES,
    prefix=_TEXT.filter(_prefix_ok),
    start=st.none() | _TEXT,
    end=st.none() | _TEXT,
    limit=st.none() | st.integers(1, 5),
)
def test_list_matches_model(
    make_store: StoreFactory,
    names: set[str],
    prefix: str,
    start: str | None,
    end: str | None,
    limit: int | None,
) -> None:
    store = make_store()
    for name in names:
        store.create(name, b"x")
    expected = sorted(
        (n for n in names if n.startswith(prefix) and (not start or n >= start) and (not end or n < end)),
        key=lambda n: n.encode("utf-8"),
    )[:limit]
    got = store.list(prefix, start_offset=start, end_offset=end, limit=limit)
    assert [m.name for m in got] == expected
