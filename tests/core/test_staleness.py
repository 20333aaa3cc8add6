"""Read-only staleness (automation §6.6; T1-T5): reasons in precedence, deterministic at asOf."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from servo.core.staleness import Staleness, Upstream, code_changed_since, stale_report, staleness

H = 3_600_000
DAY = 24 * H


def _check(**kw: Any) -> Staleness:
    base: dict[str, Any] = {
        "materialized_at_ms": 9 * H,
        "materialized_code_version": "f1",
        "code_version": "f1",
        "code_deploys": [(0, "f1")],
        "upstreams": [],
        "partitioned": True,
        "freshness_minutes": None,
        "as_of_ms": 12 * H,
    }
    return staleness(**{**base, **kw})


def test_t1_never_materialized_has_no_since() -> None:
    assert _check(materialized_at_ms=None, materialized_code_version=None) == Staleness(
        True, "NEVER_MATERIALIZED"
    )


def test_t2_code_changed_since_the_new_deploy() -> None:
    # f1 materialized; f2 deployed at 10:00, an unrelated change (f2 still) at 11:00: since 10:00.
    deploys = [(11 * H, "f2"), (10 * H, "f2"), (5 * H, "f1"), (0, None)]
    assert _check(code_version="f2", code_deploys=deploys) == Staleness(True, "CODE_CHANGED", since_ms=10 * H)
    # no recorded code version: nothing says it differed
    assert _check(materialized_code_version=None, code_version="f2").stale is False


def test_code_changed_since_counts_from_the_last_deploy_of_the_materialized_code() -> None:
    """Newest first: f2 at 8, f1 at 6 (the materialized code again), f2 at 4, f1 at 1 -> since 8;
    a version absent in between (an older manifest without fingerprints) neither starts nor ends it."""
    assert code_changed_since([(8, "f2"), (6, "f1"), (4, "f2"), (1, "f1")], "f2", "f1") == 8
    assert code_changed_since([(9, "f3"), (8, "f2"), (7, None), (6, "f2"), (1, "f1")], "f3", "f1") == 9
    assert code_changed_since([(9, "f2"), (7, None), (6, "f2"), (1, "f1")], "f2", "f1") == 6
    assert code_changed_since([(9, "f2"), (6, "f2")], "f2", "f0") == 6  # f0 no longer in the history
    assert code_changed_since([], "f2", "f1") is None


def test_code_changed_since_reads_no_deploy_older_than_the_materialized_code() -> None:
    read: list[int] = []

    def deploys() -> Any:
        for at, version in [(9, "f2"), (5, "f1"), (3, "f2")]:
            read.append(at)
            yield at, version

    assert code_changed_since(deploys(), "f2", "f1") == 9
    assert read == [9, 5]


def test_t3_upstream_materialized_later() -> None:
    ups = [Upstream("raw.b", 11 * H), Upstream("raw.a", 10 * H), Upstream("raw.c", 8 * H)]
    assert _check(upstreams=ups) == Staleness(True, "UPSTREAM_CHANGED", since_ms=10 * H, upstream="raw.a")


def test_t4_upstream_never_materialized_then_freshness_lag() -> None:
    never = _check(upstreams=[Upstream("raw.z", None), Upstream("raw.a", 10 * H)])
    assert never == Staleness(True, "UPSTREAM_NEVER_MATERIALIZED", upstream="raw.z")
    plain = {"partitioned": False, "materialized_at_ms": 0}
    assert _check(**plain, as_of_ms=DAY).stale is False  # within the default 1440 minutes
    assert _check(**plain, as_of_ms=DAY + 1) == Staleness(True, "FRESHNESS_POLICY", since_ms=DAY)
    assert _check(**plain, freshness_minutes=60, as_of_ms=2 * H) == Staleness(
        True, "FRESHNESS_POLICY", since_ms=H
    )
    assert _check(**plain, freshness_minutes=0, as_of_ms=100 * DAY).stale is False
    assert _check(partitioned=True, materialized_at_ms=0, as_of_ms=100 * DAY).stale is False


def test_precedence_first_match_wins() -> None:
    all_wrong = {
        "code_version": "f2",
        "upstreams": [Upstream("raw.a", None)],
        "partitioned": False,
        "as_of_ms": 100 * DAY,
    }
    assert _check(**all_wrong).reason == "CODE_CHANGED"
    assert _check(**{**all_wrong, "code_version": "f1"}).reason == "UPSTREAM_NEVER_MATERIALIZED"
    assert (
        _check(**{**all_wrong, "code_version": "f1", "upstreams": [Upstream("a", 10 * H)]}).reason
        == "UPSTREAM_CHANGED"
    )


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]), st.sampled_from(["", "date=d:2025-01-01"]), st.booleans()
        ),
        unique_by=lambda t: t[:2],
    ),
    st.randoms(use_true_random=False),
)
def test_t5_stale_list_is_in_one_stable_order(items: list[tuple[str, str, bool]], rnd: Any) -> None:
    entries = [(a, p, Staleness(True, "NEVER_MATERIALIZED") if s else Staleness(False)) for a, p, s in items]
    first = stale_report(entries)
    rnd.shuffle(entries)
    assert stale_report(entries) == first
    assert [(a, p) for a, p, _ in first] == sorted((a, p) for a, p, s in items if s)
