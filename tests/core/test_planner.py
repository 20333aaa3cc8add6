"""Planner (behavior §3): explicit selection -> tasks, closures only when flagged, cycles named."""

from __future__ import annotations

import itertools
from typing import TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core.errors import InvalidInput, PlanError
from servo.core.planner import MAX_SELECTION, AssetGraph, Plan, TaskOptions, find_cycle, plan
from servo.core.taskdef import TaskDef


class _Scope(TypedDict):
    tenant_id: str
    workspace_id: str


SCOPE: _Scope = {"tenant_id": "acme", "workspace_id": "production"}
CHAIN = AssetGraph.from_edges({"ns.a": [], "ns.b": ["ns.a"], "ns.c": ["ns.b"]})
# d <- l, d <- r, l <- t, r <- t  (a diamond: t feeds l and r, both feed d)
DIAMOND = AssetGraph.from_edges({"g.t": [], "g.l": ["g.t"], "g.r": ["g.t"], "g.d": ["g.l", "g.r"], "g.x": []})


def _keys(p: Plan) -> list[str]:
    return [t.key for t in p.tasks]


def test_scenario_36_selection_is_exactly_the_planned_tasks() -> None:
    graph = AssetGraph.from_edges(
        {"shop.orders": ["shop.users"], "shop.users": [], "shop.report": ["shop.orders"]}
    )
    p = plan(graph, ["shop.users", "shop.orders"], **SCOPE)
    assert _keys(p) == ["shop.orders", "shop.users"]
    assert p.root_assets == ("shop.orders", "shop.users")
    orders, users = p.tasks
    assert orders == TaskDef(
        key="shop.orders",
        depends_on=("shop.users",),
        asset_key="shop.orders",
        partition_key=None,
        max_attempts=3,
        heartbeat_timeout_sec=orders.heartbeat_timeout_sec,
        requires_visible_output=True,
    )
    assert users.depends_on == ()
    assert _keys(plan(graph, ["shop.orders"], include_downstream=True, **SCOPE)) == [
        "shop.orders",
        "shop.report",
    ]
    assert _keys(plan(graph, ["shop.orders"], include_upstream=True, **SCOPE)) == [
        "shop.orders",
        "shop.users",
    ]


def test_api_1_unsorted_selection_gives_exactly_those_tasks_with_task_key_equal_asset_key() -> None:
    graph = AssetGraph.from_edges({"analytics.daily_sales": [], "raw.events": []})
    p = plan(graph, ["raw.events", "analytics/daily_sales"], **SCOPE)
    assert _keys(p) == ["analytics.daily_sales", "raw.events"]
    assert all(t.key == t.asset_key for t in p.tasks)


@pytest.mark.parametrize("bad", ["users..daily", "analytics/", "Raw.events", " raw.events", "raw"])
def test_api_2_and_7_invalid_keys_are_plan_errors(bad: str) -> None:
    graph = AssetGraph.from_edges({"users.daily": [], "analytics.x": []})
    with pytest.raises(PlanError, match="invalid asset key") as info:
        plan(graph, [bad], **SCOPE)
    assert info.value.http_status == 400


def test_api_4_chain_selects_only_a_unless_downstream_flagged() -> None:
    assert _keys(plan(CHAIN, ["ns.a"], **SCOPE)) == ["ns.a"]
    p = plan(CHAIN, ["ns.a"], include_downstream=True, **SCOPE)
    assert _keys(p) == ["ns.a", "ns.b", "ns.c"]
    assert [t.depends_on for t in p.tasks] == [(), ("ns.a",), ("ns.b",)]
    assert p.root_assets == ("ns.a",)


def test_api_8_unknown_assets_listed_sorted() -> None:
    with pytest.raises(PlanError, match=r"^unknown asset keys: c\.d, ns\.zz$") as info:
        plan(CHAIN, ["ns.zz", "ns.a", "c/d"], **SCOPE)
    assert info.value.details["unknown"] == ["c.d", "ns.zz"]


def test_api_10_subset_b_with_and_without_downstream() -> None:
    assert _keys(plan(CHAIN, ["ns.b"], **SCOPE)) == ["ns.b"]
    assert plan(CHAIN, ["ns.b"], **SCOPE).tasks[0].depends_on == ()
    assert _keys(plan(CHAIN, ["ns.b"], include_downstream=True, **SCOPE)) == ["ns.b", "ns.c"]


def test_empty_selection_rejected() -> None:
    with pytest.raises(PlanError, match="empty"):
        plan(CHAIN, [], **SCOPE)


def test_bare_string_selection_rejected() -> None:
    with pytest.raises(PlanError, match="list"):
        plan(CHAIN, "ns.a", **SCOPE)


def test_selection_over_limit_rejected() -> None:
    with pytest.raises(PlanError, match="10000"):
        plan(CHAIN, ["ns.a"] * (MAX_SELECTION + 1), **SCOPE)


def test_duplicate_selection_items_collapse() -> None:
    p = plan(CHAIN, ["ns.a", "ns/a", "ns.a"], **SCOPE)
    assert _keys(p) == ["ns.a"] and p.root_assets == ("ns.a",)


def test_diamond_closures() -> None:
    assert _keys(plan(DIAMOND, ["g.d"], include_upstream=True, **SCOPE)) == ["g.d", "g.l", "g.r", "g.t"]
    assert _keys(plan(DIAMOND, ["g.t"], include_downstream=True, **SCOPE)) == ["g.d", "g.l", "g.r", "g.t"]
    assert _keys(plan(DIAMOND, ["g.l"], include_upstream=True, include_downstream=True, **SCOPE)) == [
        "g.d",
        "g.l",
        "g.t",
    ]
    p = plan(DIAMOND, ["g.l", "g.d"], **SCOPE)
    assert {t.key: t.depends_on for t in p.tasks} == {"g.d": ("g.l",), "g.l": ()}


def test_edges_to_unknown_assets_are_dropped() -> None:
    graph = AssetGraph.from_edges({"ns.a": ["ext.gone"], "ns.b": ["ns.a", "ext.gone"]})
    assert graph.upstream["ns.b"] == ("ns.a",)
    assert graph.downstream["ns.a"] == ("ns.b",)
    p = plan(graph, ["ns.b"], include_upstream=True, **SCOPE)
    assert {t.key: t.depends_on for t in p.tasks} == {"ns.a": (), "ns.b": ("ns.a",)}


def test_graph_keys_are_canonicalised_and_validated() -> None:
    graph = AssetGraph.from_edges({"ns/a": [], "ns/b": ["ns/a"]})
    assert graph.upstream == {"ns.a": (), "ns.b": ("ns.a",)}
    with pytest.raises(PlanError, match="Bad"):
        AssetGraph.from_edges({"Bad.key": []})
    with pytest.raises(PlanError, match="must be a list"):
        AssetGraph.from_edges({"ns.a": "ns.b"})
    with pytest.raises(PlanError, match="twice"):
        AssetGraph.from_edges({"ns/a": [], "ns.a": []})


def test_from_manifest_assets() -> None:
    graph = AssetGraph.from_manifest_assets(
        [
            {"key": {"namespace": "raw", "name": "events"}, "dependencies": []},
            {
                "key": {"namespace": "analytics", "name": "daily"},
                "dependencies": [
                    {"upstreamKey": "raw.events"},
                    {"upstreamKey": {"namespace": "x", "name": "y"}},
                ],
            },
        ]
    )
    assert graph.upstream == {"analytics.daily": ("raw.events",), "raw.events": ()}
    with pytest.raises(PlanError):
        AssetGraph.from_manifest_assets([{"dependencies": []}])


@pytest.mark.parametrize(
    "edges, expected",
    [
        ({"a.x": ["a.x"]}, ["a.x", "a.x"]),
        ({"a.x": ["a.y"], "a.y": ["a.x"]}, ["a.x", "a.y", "a.x"]),
        ({"a.x": ["a.z"], "a.y": ["a.x"], "a.z": ["a.y"], "a.w": []}, ["a.x", "a.y", "a.z", "a.x"]),
    ],
)
def test_cycles_are_found_and_named(edges: dict[str, list[str]], expected: list[str]) -> None:
    graph = AssetGraph.from_edges(edges)
    cycle = find_cycle(graph)
    assert cycle == expected
    # every consecutive pair is an upstream -> downstream edge
    for up, down in itertools.pairwise(cycle):
        assert up in graph.upstream[down]
    with pytest.raises(PlanError, match="cycle") as info:
        plan(graph, [expected[0]], **SCOPE)
    assert " -> ".join(expected) in str(info.value)
    assert info.value.details["cycle"] == expected


def test_acyclic_graphs_have_no_cycle() -> None:
    assert find_cycle(DIAMOND) is None
    assert find_cycle(AssetGraph.from_edges({})) is None


def test_partition_key_and_task_options() -> None:
    options = {"ns/b": TaskOptions(max_retries=0, timeout_seconds=60, heartbeat_timeout_sec=45)}
    p = plan(
        CHAIN,
        ["ns.a"],
        include_downstream=True,
        partition_key="date=d:2025-01-15",
        task_options=options,
        **SCOPE,
    )
    assert {t.partition_key for t in p.tasks} == {"date=d:2025-01-15"}
    a, b, _ = p.tasks
    assert (b.max_attempts, b.timeout_seconds, b.heartbeat_timeout_sec) == (1, 60, 45)
    assert (a.max_attempts, a.timeout_seconds) == (3, None)
    assert TaskOptions().max_retries == 2


def test_bad_task_options_rejected() -> None:
    with pytest.raises(InvalidInput):
        TaskOptions(max_retries=-1)
    with pytest.raises(InvalidInput):
        TaskOptions(timeout_seconds=0)
    with pytest.raises(InvalidInput):
        TaskOptions(heartbeat_timeout_sec=0)


def test_non_canonical_partition_key_rejected() -> None:
    with pytest.raises(InvalidInput, match="canonical"):
        plan(CHAIN, ["ns.a"], partition_key="count=i:007", **SCOPE)


def test_fingerprint_matches_golden_vector() -> None:
    p = plan(AssetGraph.from_edges({"raw.events": []}), ["raw/events"], **SCOPE)
    assert p.fingerprint == "sha256:6fb2d2adcd8cbe9af2dc86d711da22766ab78362cf6a20941a3f1b75c59af6a8"


def test_plan_is_deterministic_regardless_of_selection_order() -> None:
    one = plan(DIAMOND, ["g.x", "g.l", "g/r"], include_upstream=True, **SCOPE)
    two = plan(DIAMOND, ["g.r", "g/x", "g.l", "g.x"], include_upstream=True, **SCOPE)
    assert one == two
    assert one.fingerprint.startswith("sha256:") and len(one.fingerprint) == 71


def test_fingerprint_depends_on_scope_tasks_and_partition() -> None:
    base = plan(CHAIN, ["ns.a"], **SCOPE).fingerprint
    assert plan(CHAIN, ["ns.a"], tenant_id="other", workspace_id="production").fingerprint != base
    assert plan(CHAIN, ["ns.a"], include_downstream=True, **SCOPE).fingerprint != base
    assert plan(CHAIN, ["ns.a"], partition_key="date=d:2025-01-15", **SCOPE).fingerprint != base


@st.composite
def dags(draw: st.DrawFn) -> tuple[AssetGraph, list[str]]:
    n = draw(st.integers(min_value=1, max_value=12))
    names = [f"ns.a{i}" for i in range(n)]
    # Edges only from a lower index to a higher one keep the graph acyclic.
    edges = {
        names[i]: [names[j] for j in range(i) if draw(st.booleans())]
        + draw(st.lists(st.just("ext.unknown"), max_size=1))
        for i in range(n)
    }
    selection = draw(st.lists(st.sampled_from(names), min_size=1, max_size=n))
    return AssetGraph.from_edges(edges), selection


def _reach(graph: AssetGraph, start: set[str], edges: dict[str, tuple[str, ...]]) -> set[str]:
    seen = set(start)
    frontier = list(start)
    while frontier:
        for nxt in edges[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


@settings(max_examples=200, deadline=None)
@given(dags(), st.booleans(), st.booleans())
def test_property_plans_are_closed_and_exact(
    case: tuple[AssetGraph, list[str]], up: bool, down: bool
) -> None:
    graph, selection = case
    p = plan(graph, selection, include_upstream=up, include_downstream=down, **SCOPE)
    planned = {t.key for t in p.tasks}
    for task in p.tasks:
        assert set(task.depends_on) <= planned
        assert set(task.depends_on) == set(graph.upstream[task.key]) & planned
        assert list(task.depends_on) == sorted(task.depends_on)
    roots = set(selection)
    expected = set(roots)
    if up:
        expected |= _reach(graph, roots, dict(graph.upstream))
    if down:
        expected |= _reach(graph, roots, dict(graph.downstream))
    assert planned == expected
    if not up and not down:
        assert planned == roots
    assert _keys(p) == sorted(planned)
    assert plan(graph, list(reversed(selection)), include_upstream=up, include_downstream=down, **SCOPE) == p


def test_an_unknown_key_names_the_deployed_keys_that_look_alike() -> None:
    from servo.core.planner import unknown_keys_message

    known = ["shop.orders", "shop.order_lines", "shop.users", "demo.a", "demo.b"]
    assert unknown_keys_message(["shop.ordres"], known) == (
        "unknown asset keys: shop.ordres (did you mean shop.orders, shop.order_lines?)"
    )
    assert (
        unknown_keys_message(["shpo.users"], known)
        == "unknown asset keys: shpo.users (did you mean shop.users?)"
    )
    assert unknown_keys_message(["demo.x"], known) == "unknown asset keys: demo.x"
