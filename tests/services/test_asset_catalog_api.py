"""The asset catalog's reads at the service level: automation §7 scenarios L1-L5 and T1-T5, and bad input
(400 naming the field, 404 for an unknown asset)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from servo.core.errors import InvalidInput, NotFound
from servo.core.timefmt import format_timestamp
from servo.services.asset_projection import rebuild_asset_catalog, refresh_asset_catalog
from servo.services.assets import get_asset, list_asset_partitions, list_assets

from tests.services.catalog_support import WS, Stack, daily_asset, day, plain_asset, stack
from tests.support.context import T0

DAY_MS = 86_400_000


def _asset(s: Stack, key: str, **query: str) -> dict:  # type: ignore[type-arg]
    return get_asset(s.ctx, "default", WS, key, query)


def _partitions(s: Stack, key: str, **query: str) -> dict:  # type: ignore[type-arg]
    return list_asset_partitions(s.ctx, "default", WS, key, query)


def test_l1_a_partitions_lineage_names_the_attempt_and_its_delta_output(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(daily_asset("ns.daily"))
    run = s.trigger("ns.daily", partition=day("2025-01-15"))
    output = {
        "materializationId": "m1",
        "deltaTable": "t",
        "deltaVersion": 42,
        "deltaPartition": "date=2025-01-15",
    }
    s.finish_next(output=output)
    [p] = _partitions(s, "ns.daily")["partitions"]
    ref = json.loads(p["lastMaterialization"]["executionLineageRef"])
    assert ref == {"runId": run, "taskKey": "ns.daily", "attempt": 1, "materializationId": "m1",
                   "deltaTable": "t", "deltaVersion": 42, "deltaPartition": "date=2025-01-15"}  # fmt: skip
    assert p["lastMaterialization"]["deltaVersion"] == 42
    assert p["partition"] == {"date": "2025-01-15"} and p["status"] == "MATERIALIZED"
    from servo.services.runs import get_run

    assert (
        get_run(s.ctx, "default", WS, run)["tasks"][0]["executionLineageRef"]
        == p["lastMaterialization"]["executionLineageRef"]
    )


def test_l2_failure_after_success_keeps_the_materialization(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(daily_asset("ns.daily", maxRetries=0))
    first = s.trigger("ns.daily", partition=day("2025-01-15"))
    s.finish_next()
    s.trigger("ns.daily", partition=day("2025-01-15"))
    s.finish_next("FAILED")
    [p] = _partitions(s, "ns.daily")["partitions"]
    assert p["status"] == "MATERIALIZED_BUT_LAST_ATTEMPT_FAILED"
    assert p["lastAttempt"]["outcome"] == "FAILED" and p["lastMaterialization"]["runId"] == first
    summary = _asset(s, "ns.daily")["partitions"]
    assert (summary["materialized"], summary["failed"]) == (1, 1)


def test_l3_a_skipped_task_leaves_no_row(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(
        plain_asset("ns.a", fingerprint="f1") | {"execution": {"maxRetries": 0}}, plain_asset("ns.b", "ns.a")
    )
    s.trigger("ns.a", "ns.b")
    s.finish_next("FAILED")  # a fails; b is skipped by the fold
    assert _partitions(s, "ns.b")["partitions"] == []
    assert "lastAttempt" not in _asset(s, "ns.b")


def test_l4_partitions_by_key_paged_filtered_and_summarized_over_the_definition(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.clock.now_ms = T0  # 2027-01-15: the daily definition from 2025-01-01 holds 745 partitions
    s.deploy(daily_asset("ns.daily", maxRetries=0))
    for d in ("2025-01-03", "2025-01-01", "2025-01-02"):
        s.trigger("ns.daily", partition=day(d))
        s.finish_next()
    s.trigger("ns.daily", partition=day("2025-01-04"))
    s.finish_next("FAILED")
    page = _partitions(s, "ns.daily", limit="2")
    assert [p["partitionKey"] for p in page["partitions"]] == [day("2025-01-01"), day("2025-01-02")]
    rest = _partitions(s, "ns.daily", limit="2", cursor=page["nextCursor"])
    assert [p["partitionKey"] for p in rest["partitions"]] == [day("2025-01-03"), day("2025-01-04")]
    assert "nextCursor" not in rest
    never = _partitions(s, "ns.daily", status="NEVER_MATERIALIZED")["partitions"]
    assert [p["partitionKey"] for p in never] == [day("2025-01-04")]
    summary = _asset(s, "ns.daily")["partitions"]
    assert summary == {"total": 745, "materialized": 3, "failed": 1, "missing": 742, "stale": 0}
    with pytest.raises(NotFound):
        _partitions(s, "ns.nope")
    with pytest.raises(NotFound):
        _asset(s, "ns.nope")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "DONE"}, "status"),
        ({"stale": "yes"}, "stale"),
        ({"asOf": "yesterday"}, "asOf"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "!!"}, "cursor"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_queries_are_400_naming_the_field(tmp_path: Path, query: dict[str, str], field: str) -> None:
    s = stack(tmp_path)
    s.deploy(daily_asset("ns.daily"))
    with pytest.raises(InvalidInput) as err:
        _partitions(s, "ns.daily", **query)
    assert err.value.details["field"] == field


def test_l5_the_list_includes_unpartitioned_assets_and_stale_filters(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(plain_asset("ns.fresh"), plain_asset("ns.never"), daily_asset("ns.daily"))
    s.trigger("ns.fresh")
    s.finish_next()
    listed = list_assets(s.ctx, "default", WS, {})["assets"]
    assert [a["assetKey"] for a in listed] == ["ns.daily", "ns.fresh", "ns.never"]
    assert listed[1]["partitioned"] is False and listed[1]["partitions"]["total"] == 1
    assert "partitionKey" not in listed[1]["lastMaterialization"]
    stale = list_assets(s.ctx, "default", WS, {"stale": "true"})["assets"]
    assert [a["assetKey"] for a in stale] == ["ns.daily", "ns.never"]
    fresh = list_assets(s.ctx, "default", WS, {"stale": "false", "prefix": "ns.f"})["assets"]
    assert [a["assetKey"] for a in fresh] == ["ns.fresh"]


def test_t1_never_materialized_has_no_since(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(plain_asset("ns.a"))
    assert _asset(s, "ns.a")["staleness"] == {"stale": True, "reason": "NEVER_MATERIALIZED"}


def _since(s: Stack, key: str) -> str:
    shown = _asset(s, key)["staleness"]
    assert shown["reason"] == "CODE_CHANGED"
    return str(shown["since"])


def test_t2_code_changed_since_the_new_codes_deploy_not_a_later_unrelated_one(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(plain_asset("ns.a", fingerprint="f1"))
    s.trigger("ns.a")
    s.finish_next()
    s.clock.advance(60_000)
    t2 = s.clock.now_ms
    s.deploy(plain_asset("ns.a", fingerprint="f2"))
    shown = _asset(s, "ns.a")
    assert shown["codeVersion"] == "f2" and shown["lastMaterialization"]["codeVersion"] == "f1"
    assert shown["staleness"] == {"stale": True, "reason": "CODE_CHANGED", "since": format_timestamp(t2)}
    s.clock.advance(60_000)
    s.deploy(plain_asset("ns.a", fingerprint="f2"), plain_asset("ns.b"))  # an unrelated change at t3
    assert _since(s, "ns.a") == format_timestamp(t2)
    # Back to the materialized code and away again: stale since the deploy that left it the last time.
    s.clock.advance(60_000)
    s.deploy(plain_asset("ns.a", fingerprint="f1"))
    assert _asset(s, "ns.a")["staleness"]["stale"] is False
    s.clock.advance(60_000)
    t5 = s.clock.now_ms
    s.deploy(plain_asset("ns.a", fingerprint="f2"))
    s.clock.advance(60_000)
    s.deploy(plain_asset("ns.a", fingerprint="f2"), plain_asset("ns.c"))
    assert _since(s, "ns.a") == format_timestamp(t5)
    # A catalog folded from nothing, in a fresh instance, answers the same.
    store = s.ctx.workspace_store("default", WS)
    for m in list(store.list("automation/assets/")):
        store.delete(m.name)
    s.ctx.cache.clear()
    assert _since(s, "ns.a") == format_timestamp(t5)


def test_t3_an_upstream_materialized_later_makes_it_stale(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(plain_asset("ns.up"), plain_asset("ns.down", "ns.up"))
    s.trigger("ns.up", "ns.down")
    s.finish_next()
    s.finish_next()
    assert _asset(s, "ns.down")["staleness"] == {"stale": False}
    s.clock.advance(3_600_000)
    s.trigger("ns.up")
    s.finish_next()
    up_at = _asset(s, "ns.up")["lastMaterialization"]["at"]
    assert _asset(s, "ns.down")["staleness"] == {
        "stale": True,
        "reason": "UPSTREAM_CHANGED",
        "since": up_at,
        "upstream": "ns.up",
    }


def test_t4_upstream_never_materialized_then_the_freshness_policy(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(plain_asset("ns.up"), plain_asset("ns.down", "ns.up", freshnessMinutes=60))
    s.trigger("ns.down")
    s.finish_next()
    assert _asset(s, "ns.down")["staleness"] == {
        "stale": True,
        "reason": "UPSTREAM_NEVER_MATERIALIZED",
        "upstream": "ns.up",
    }
    s.deploy(plain_asset("ns.up"), plain_asset("ns.down", freshnessMinutes=60))
    done_at = _asset(s, "ns.down")["lastMaterialization"]["at"]
    assert _asset(s, "ns.down")["staleness"] == {"stale": False}
    s.clock.advance(61 * 60_000)
    late = _asset(s, "ns.down")["staleness"]
    assert late["reason"] == "FRESHNESS_POLICY"
    from servo.core.timefmt import parse_timestamp

    assert late["since"] == format_timestamp(parse_timestamp(done_at) + 60 * 60_000)
    early = format_timestamp(parse_timestamp(done_at) + 60_000)
    assert _asset(s, "ns.down", asOf=early)["staleness"] == {"stale": False}


def test_t5_the_stale_list_is_stable_and_equal_after_a_rebuild(tmp_path: Path) -> None:
    s = stack(tmp_path)
    s.deploy(plain_asset("ns.b"), plain_asset("ns.a"), daily_asset("ns.c"))
    s.trigger("ns.a")
    s.finish_next()
    as_of = format_timestamp(s.clock.now_ms + 2 * DAY_MS)
    first = list_assets(s.ctx, "default", WS, {"stale": "true", "asOf": as_of})
    second = list_assets(s.ctx, "default", WS, {"stale": "true", "asOf": as_of})
    assert first == second
    assert [a["assetKey"] for a in first["assets"]] == ["ns.a", "ns.b", "ns.c"]
    # A catalog folded from nothing over the same ledger answers the same.
    store = s.ctx.workspace_store("default", WS)
    for m in list(store.list("automation/assets/")):
        store.delete(m.name)
    s.ctx.cache.clear()
    assert list_assets(s.ctx, "default", WS, {"stale": "true", "asOf": as_of}) == first
    rows, _ = rebuild_asset_catalog(s.events())
    assert {
        (r.asset_key, r.partition_key) for r in refresh_asset_catalog(s.ctx, "default", WS).all_partitions()
    } == set(rows)
