"""A dependency between two assets partitioned differently is refused at deploy, in the user's words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from servo.core.errors import InvalidInput
from servo.services.manifests import deploy_manifest

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context

DAILY = [{"name": "date", "kind": "time", "granularity": "day"}]
REGIONS = [{"name": "region", "kind": "static", "values": ["eu", "us"]}]


def _partitioned(key: str, dims: list[dict[str, Any]], *deps: str) -> dict[str, Any]:
    return {**asset(key, *deps), "partitioning": {"isPartitioned": bool(dims), "dimensions": dims}}


def _deploy(tmp_path: Path, *assets: dict[str, Any]) -> int:
    ctx, _, _ = make_context(tmp_path)
    return deploy_manifest(ctx, "default", "ws", json.dumps(manifest(*assets)).encode(), None)[0]


def test_a_daily_asset_cannot_feed_a_static_partitioned_one(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as refused:
        _deploy(tmp_path, _partitioned("ns.day", DAILY), _partitioned("ns.region", REGIONS, "ns.day"))
    message = refused.value.message
    assert "ns.region is partitioned by region (static)" in message
    assert "upstream ns.day is partitioned by date (daily)" in message


def test_hourly_cannot_feed_daily_but_alike_or_unpartitioned_edges_deploy(tmp_path: Path) -> None:
    hourly = [{"name": "date", "kind": "time", "granularity": "hour"}]
    with pytest.raises(InvalidInput, match=r"date \(hourly\)"):
        _deploy(tmp_path / "1", _partitioned("ns.h", hourly), _partitioned("ns.d", DAILY, "ns.h"))
    assert (
        _deploy(
            tmp_path / "2",
            _partitioned("ns.a", DAILY),
            _partitioned("ns.b", DAILY, "ns.a"),
            _partitioned("ns.total", [], "ns.b"),
        )
        == 201
    )
