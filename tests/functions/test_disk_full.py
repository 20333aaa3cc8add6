"""A full disk answers 503 with a clear message, and changes nothing that a retry could trip over.

The attack filled the disk under ``servo dev``: trigger answered 500 INTERNAL. Nothing else was wrong
(no partial files, run keys not used up, runs finished once space was freed) and that is kept: the
disk fills at every write of a trigger in turn, and the same request after space is freed succeeds.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from servo.dev.embedded import router_app
from servo.services.context import ServiceContext
from servo.services.manifests import deploy_manifest
from servo.services.timers import sweep
from servo.store import ObjectMeta, ObjectStore, StoredObject

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import RecordingQueue, make_context

TRIGGER = {"selection": ["ns.a"], "runKey": "nightly-1"}


class FillingDisk:
    """An ObjectStore whose disk is full from the ``fill_at``-th write on (1-based), until ``free()``."""

    def __init__(self, inner: ObjectStore, fill_at: int) -> None:
        self._inner = inner
        self._left = fill_at - 1
        self.full = False
        self.refused = 0

    def free(self) -> None:
        self.full, self._left = False, 1 << 30

    def _write(self) -> None:
        if self._left <= 0:
            self.full = True
        if self.full:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        self._left -= 1

    def create(self, name: str, data: bytes, **kw: Any) -> int:
        self._write()
        return self._inner.create(name, data, **kw)

    def put(self, name: str, data: bytes, **kw: Any) -> int:
        self._write()
        return self._inner.put(name, data, **kw)

    def delete(self, name: str, **kw: Any) -> bool:
        return self._inner.delete(name, **kw)

    def get(self, name: str) -> StoredObject | None:
        return self._inner.get(name)

    def list(self, prefix: str, **kw: Any) -> list[ObjectMeta]:
        return self._inner.list(prefix, **kw)


def _stack(tmp_path: Path, fill_at: int) -> tuple[ServiceContext, FillingDisk, RecordingQueue]:
    from dataclasses import replace

    ctx, _, queue = make_context(tmp_path)
    body = json.dumps(manifest(asset("ns.a"))).encode()
    assert deploy_manifest(ctx, "default", "prod", body, None)[0] == 201
    disk = FillingDisk(ctx.store, fill_at)
    return replace(ctx, store=disk), disk, queue


def _files(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())


@pytest.mark.parametrize("fill_at", [1, 2, 3, 4, 5, 6])
def test_a_full_disk_answers_503_and_the_same_trigger_succeeds_once_space_is_freed(
    tmp_path: Path, fill_at: int
) -> None:
    ctx, disk, queue = _stack(tmp_path, fill_at)
    client = router_app(lambda: ctx).test_client()
    before = _files(tmp_path)
    res = client.post("/v1/workspaces/prod/runs", json=TRIGGER)
    if not disk.refused:
        pytest.skip(f"a trigger makes fewer than {fill_at} writes")
    if res.status_code >= 300:  # the request's own writes failed (else only its compaction did)
        assert res.status_code == 503, res.get_json()
        answer = res.get_json()
        assert answer["code"] == "UNAVAILABLE" and "space" in answer["message"]
    assert str(tmp_path) not in res.get_data(as_text=True)
    assert not [f for f in _files(tmp_path) if "%t" in f], "a partial file was left behind"
    assert len(_files(tmp_path)) - len(before) < 2 * fill_at  # only whole objects, each with its lock

    disk.free()
    retried = client.post("/v1/workspaces/prod/runs", json=TRIGGER)
    assert retried.status_code in (200, 201), retried.get_json()
    run_id = retried.get_json()["runId"]
    # A compaction that failed for space is caught up by the next sweep tick, as after any failure.
    sweep(ctx, {})
    assert client.get(f"/v1/workspaces/prod/runs/{run_id}").status_code == 200
    # The run goes on: its first task is dispatched (now, or by the sweep's repair of a lost one).
    if not queue.take():
        ctx.clock_ms.advance(11 * 60_000)  # type: ignore[attr-defined]
        sweep(ctx, {})
        assert queue.take(), "the run was never dispatched once space was freed"
