"""The compactor's per-batch log line carries the compaction lag (design §8), the field the
deployment's log-based metric and alert read (infra: jsonPayload.compaction_lag_ms)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from servo.services.manifests import deploy_manifest
from servo.services.orchestrate import compact_and_act
from servo.services.trigger import trigger_run

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context


def test_a_published_batch_logs_its_compaction_lag(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ctx, clock, _ = make_context(tmp_path, compact=False)
    assert (
        deploy_manifest(ctx, "default", "prod", json.dumps(manifest(asset("ns.a"))).encode(), None)[0] == 201
    )
    trigger_run(ctx, "default", "prod", {"selection": ["ns.a"]})
    clock.advance(2500)
    with caplog.at_level(logging.INFO, logger="servo"):
        outcome = compact_and_act(ctx, "default", "prod")
    assert outcome.published
    [line] = [r for r in caplog.records if r.getMessage() == "compaction"]
    assert line.servo["compaction_lag_ms"] >= 2500  # type: ignore[attr-defined]
