"""A corrupt file in the local store (a disk-full or crash leftover, a truncation) wedges nothing.

The attack: a ledger object truncated to 0 bytes made every listing of the ledger raise, so the sweep
failed every tick on an idle stack, and the 500 it answered showed the file's absolute path.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from servo.core.errors import CorruptObject
from servo.store import LocalFileStore


def _truncate(store: LocalFileStore, name: str) -> Path:
    path = store.root.joinpath(*name.split("/"))
    data_file = path.with_name(path.name + "%o")
    data_file.write_bytes(b"")
    return data_file


def test_a_truncated_object_is_skipped_by_listings_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalFileStore(tmp_path / "bucket", durable=False)
    for name in ("l/a", "l/b", "l/c"):
        store.create(name, b"{}")
    _truncate(store, "l/b")
    with caplog.at_level(logging.WARNING, logger="servo.store"):
        assert [m.name for m in store.list("l/")] == ["l/a", "l/c"]
    assert store.corrupt_objects_skipped == 1
    (record,) = [r for r in caplog.records if getattr(r, "servo", {}).get("category") == "CORRUPT_OBJECT"]
    assert record.servo["object"] == "l/b"
    assert str(tmp_path) not in record.getMessage()


def test_reading_or_writing_a_truncated_object_names_it_but_never_the_machine_path(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "bucket", durable=False)
    store.create("l/b", b"{}")
    _truncate(store, "l/b")
    for attempt in (lambda: store.get("l/b"), lambda: store.create("l/b", b"{}")):
        with pytest.raises(CorruptObject) as refused:
            attempt()
        assert "l/b" in refused.value.message
        assert str(tmp_path) not in refused.value.message
