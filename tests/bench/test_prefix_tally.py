"""The embedded bench's store tally: its bookkeeping runs on the stack's threads, inside the CPU window,
so what it can leave for later (reading each ledger object's type) it leaves until it is asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from servo.store.local import LocalFileStore

from bench._instrument import PrefixTally


def _ledger(event_type: str, run_id: str) -> bytes:
    return json.dumps({"event_type": event_type, "data": {"run_id": run_id}}).encode()


def test_a_ledger_write_is_not_decoded_on_the_writers_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tally = PrefixTally(LocalFileStore(tmp_path))
    decoded: list[bytes] = []
    real = json.loads
    monkeypatch.setattr(json, "loads", lambda data, **kw: decoded.append(data) or real(data, **kw))
    tally.create("t/w/ledger/01.json", _ledger("RunTriggered", "r1"))
    tally.create("t/w/ledger/02.json", _ledger("TaskStarted", "r1"))
    assert decoded == []
    assert tally.ledger_snapshot() == {"RunTriggered": 1, "TaskStarted": 1}
    assert list(tally.run_triggered_at) == ["r1"]


def test_a_reset_starts_the_types_again_but_keeps_when_each_run_was_triggered(
    tmp_path: Path,
) -> None:
    tally = PrefixTally(LocalFileStore(tmp_path))
    tally.create("t/w/ledger/01.json", _ledger("RunTriggered", "r1"))
    first = tally.run_triggered_at["r1"]
    tally.reset()
    tally.create("t/w/ledger/02.json", _ledger("RunTriggered", "r2"))
    tally.create("t/w/ledger/03.json", _ledger("RunTriggered", "r1"))  # a replay: the first time stands
    assert tally.ledger_snapshot() == {"RunTriggered": 2}
    assert tally.run_triggered_at["r1"] == first
    assert set(tally.run_triggered_at) == {"r1", "r2"}
