"""A compaction in the writer's process (the embedded stack) takes the events written there instead of
reading their objects back; the ledger stays the truth for everything else."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servo.core import events as events_module
from servo.core.events import (
    EncodedEvent,
    Event,
    decode_event,
    event_body,
    event_id_from_object_name,
    ledger_object_name,
)
from servo.services import compaction
from servo.services._compaction_ledger import LEDGER_PREFIX, WrittenEvents, written_events
from servo.services.callbacks import task_completed, task_started
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import compact_workspace
from servo.services.trigger import trigger_run
from servo.store import CountingStore

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import RecordingQueue, make_context

T, WS = "default", "prod"


class LedgerReads(CountingStore):
    """Records the ledger objects read through it."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.ledger_reads: list[str] = []

    def get(self, name: str) -> Any:
        if f"/{LEDGER_PREFIX}" in name:
            self.ledger_reads.append(name)
        return super().get(name)


def _deployed(tmp_path: Path) -> tuple[ServiceContext, RecordingQueue, LedgerReads]:
    ctx, _, queue = make_context(tmp_path)
    reads = LedgerReads(ctx.store)
    ctx = replace(ctx, store=reads)
    body = manifest(asset("ns.a"), asset("ns.b", "ns.a"))
    assert deploy_manifest(ctx, T, WS, json.dumps(body).encode(), None)[0] == 201
    return ctx, queue, reads


def _run_chain(ctx: ServiceContext, queue: RecordingQueue) -> None:
    trigger_run(ctx, T, WS, {"selection": ["ns.a"], "includeDownstream": True})
    for _ in range(2):
        envelope = json.loads(queue.take()[0].body)
        headers = {"authorization": f"Bearer {envelope['taskToken']}"}
        ids = {"attempt": envelope["attempt"], "attemptId": envelope["attemptId"], "workerId": "w1"}
        task_started(ctx, envelope["taskId"], headers, ids)
        task_completed(ctx, envelope["taskId"], headers, {**ids, "outcome": "SUCCEEDED"})


def test_a_compaction_in_the_writers_process_reads_back_none_of_its_events(tmp_path: Path) -> None:
    ctx, queue, reads = _deployed(tmp_path)
    _run_chain(ctx, queue)
    assert reads.ledger_reads == []
    assert [e.public_state for e in ctx.snapshot(T, WS).manifest.live.values()] == ["SUCCEEDED"]


def test_what_is_taken_is_what_a_read_gives(tmp_path: Path) -> None:
    ctx, queue, _ = _deployed(tmp_path)
    _run_chain(ctx, queue)
    written = written_events(ctx.workspace_cache(T, WS))
    store = ctx.workspace_store(T, WS)
    names = [m.name for m in store.list(LEDGER_PREFIX)]
    assert len(names) > 5
    for name in names:
        obj = store.get(name)
        assert obj is not None
        taken = written.taken(name)
        # The event with its object's bytes, as the compaction's fold takes it and a segment stores it.
        assert isinstance(taken, EncodedEvent) and taken.body.encode() == obj.data
        assert taken.event == decode_event(obj.data)


def test_a_compaction_in_the_writers_process_publishes_the_bytes_written_without_encoding_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, queue, _ = _deployed(tmp_path)
    encoded: list[str] = []
    compacting = False
    real_encode, real_compact = events_module.encode_event, compaction.compact

    def encode(event: Event) -> bytes:
        if compacting:
            encoded.append(event.event_id)
        return real_encode(event)

    def compact(*args: Any, **kwargs: Any) -> Any:
        nonlocal compacting
        compacting = True
        try:
            return real_compact(*args, **kwargs)
        finally:
            compacting = False

    monkeypatch.setattr(events_module, "encode_event", encode)
    monkeypatch.setattr(compaction, "compact", compact)
    _run_chain(ctx, queue)
    monkeypatch.undo()
    assert encoded == []
    # Every published event is stored as the bytes of its ledger object.
    store = ctx.workspace_store(T, WS)
    published = compaction.load_published_state(store, tenant_id=T, workspace_id=WS)
    bodies = {i: event_body(e) for p in published.runs.values() for i, e in p.events.items()}
    assert len(bodies) > 5
    for event_id, body in bodies.items():
        obj = store.get(ledger_object_name(event_id))
        assert obj is not None and body.encode() == obj.data


def test_an_object_another_writer_wrote_is_read_from_the_ledger(tmp_path: Path) -> None:
    ctx, queue, reads = _deployed(tmp_path)
    # Another process (no compaction of its own) triggers: nothing it wrote is noted here.
    other = replace(ctx, after_ledger_write=None, cache={})
    trigger_run(other, T, WS, {"selection": ["ns.a"], "includeDownstream": True})
    assert queue.take() == []
    published, applied, malformed, _ = compact_workspace(ctx, T, WS)
    assert published and applied > 0 and malformed == 0
    assert len(reads.ledger_reads) == applied
    assert [e.public_state for e in ctx.snapshot(T, WS).manifest.live.values()] == ["RUNNING"]


def test_written_events_keep_the_newest_up_to_their_cap(tmp_path: Path) -> None:
    ctx, queue, _ = _deployed(tmp_path)
    _run_chain(ctx, queue)
    store = ctx.workspace_store(T, WS)
    names = sorted(m.name for m in store.list(LEDGER_PREFIX))
    source = written_events(ctx.workspace_cache(T, WS))
    kept = WrittenEvents(cap=3)
    for name in names:
        taken = source.taken(name)
        assert taken is not None and taken.event is not None
        assert taken.event.event_id == event_id_from_object_name(name)
        kept.note(name, taken.event, taken.body.encode())
    assert [n for n in names if kept.get(n) is not None] == names[-3:]
