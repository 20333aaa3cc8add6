"""Drive asset runs through the real services (deploy, trigger, dispatch, callbacks) for catalog tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servo.core.events import decode_event
from servo.services.callbacks import task_completed, task_started
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import FakeClock, RecordingQueue, make_context

WS = "prod"
DAILY = {"name": "date", "kind": "time", "granularity": "day", "start": "2025-01-01"}


def day(d: str) -> str:
    return f"date=d:{d}"


def daily_asset(key: str, *deps: str, fingerprint: str = "f1", **execution: int) -> dict[str, Any]:
    body = asset(key, *deps, **execution)
    body["partitioning"] = {"dimensions": [DAILY]}
    body["transformFingerprint"] = fingerprint
    return body


def plain_asset(key: str, *deps: str, fingerprint: str = "f1", **extra: Any) -> dict[str, Any]:
    body = asset(key, *deps)
    body["transformFingerprint"] = fingerprint
    return body | extra


@dataclass
class Stack:
    ctx: ServiceContext
    clock: FakeClock
    queue: RecordingQueue

    def deploy(self, *assets: dict[str, Any]) -> None:
        code = f"cv-{self.clock.now_ms}"
        body = json.dumps(manifest(*assets, code_version=code)).encode()
        assert deploy_manifest(self.ctx, "default", WS, body, None)[0] == 201

    def trigger(self, *selection: str, partition: str | None = None) -> str:
        request: dict[str, Any] = {"selection": list(selection)}
        if partition is not None:
            request["partitionKey"] = partition
        status, body = trigger_run(self.ctx, "default", WS, request)[:2]
        assert status in (200, 201), body
        return str(body["runId"])

    def start_next(self) -> list[dict[str, Any]]:
        """Start every task the queue holds (a worker that then says nothing); returns their envelopes."""
        envelopes = [json.loads(task.body) for task in self.queue.take()]
        for envelope in envelopes:
            self.start(envelope)
        return envelopes

    def start(self, envelope: dict[str, Any]) -> None:
        task_started(self.ctx, envelope["taskId"], _auth(envelope), _ids(envelope))

    def complete(self, envelope: dict[str, Any], outcome: str, output: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {**_ids(envelope), "outcome": outcome}
        if outcome == "SUCCEEDED":
            body["output"] = output or {"materializationId": f"m-{envelope['attemptId']}", "rowCount": 3}
        else:
            body["error"] = {"category": "USER_CODE", "message": "boom", "retryable": False}
        task_completed(self.ctx, envelope["taskId"], _auth(envelope), body)

    def finish_next(self, outcome: str = "SUCCEEDED", output: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start and complete every task the queue holds; returns the last envelope."""
        envelope: dict[str, Any] = {}
        for task in self.queue.take():
            envelope = json.loads(task.body)
            self.start(envelope)
            self.clock.advance(1000)
            self.complete(envelope, outcome, output)
        return envelope

    def events(self) -> list[Any]:
        store = self.ctx.workspace_store("default", WS)
        return [decode_event(store.get(m.name).data) for m in store.list("ledger/orchestration/")]  # type: ignore[union-attr]


def _auth(envelope: dict[str, Any]) -> dict[str, str]:
    return {"authorization": f"Bearer {envelope['taskToken']}"}


def _ids(envelope: dict[str, Any]) -> dict[str, Any]:
    return {"attempt": envelope["attempt"], "attemptId": envelope["attemptId"], "workerId": "w1"}


def stack(tmp_path: Path) -> Stack:
    ctx, clock, queue = make_context(tmp_path)
    return Stack(ctx, clock, queue)
