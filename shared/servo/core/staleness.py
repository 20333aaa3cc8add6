"""Read-only staleness (automation §6.6; T1-T5): why an asset partition is stale at ``asOf``, if it is.

Reasons are tried in the spec's precedence and the first match wins: NEVER_MATERIALIZED, CODE_CHANGED,
UPSTREAM_NEVER_MATERIALIZED, UPSTREAM_CHANGED, FRESHNESS_POLICY. The answer is a pure function of the
values passed in and ``as_of_ms``, so a report at one ``asOf`` is the same after a ledger rebuild (T5).
Choosing the upstream materialization (the same partition when the dimensions match, else the upstream's
newest of any partition) is the caller's: it knows the manifest. So is reading the deploys: CODE_CHANGED's
``since`` is when the current code version came in after the materialized one last was deployed
(``code_changed_since``), a function of the deployed manifests, which never change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_FRESHNESS_MINUTES",
    "Deploy",
    "Staleness",
    "Upstream",
    "code_changed_since",
    "stale_report",
    "staleness",
]

DEFAULT_FRESHNESS_MINUTES = 1440


@dataclass(frozen=True, slots=True)
class Staleness:
    """``staleness{stale, reason, since, upstream}`` of the API; ``since_ms``/``upstream`` when known."""

    stale: bool
    reason: str | None = None
    since_ms: int | None = None
    upstream: str | None = None


@dataclass(frozen=True, slots=True)
class Upstream:
    """An upstream asset and the time of its relevant materialization (None: never materialized)."""

    asset_key: str
    materialized_at_ms: int | None


_FRESH = Staleness(False)

# (deployed_at_ms, the asset's code version in that manifest, None if it had none or no such asset)
Deploy = tuple[int, str | None]


def code_changed_since(
    deploys: Iterable[Deploy], code_version: str, materialized_code_version: str
) -> int | None:
    """When the asset's code became ``code_version`` for good: of the deploys after the last one whose
    manifest carries ``materialized_code_version``, the first carrying ``code_version``.

    ``deploys`` run newest first, from the current manifest back; they are read only down to the last
    deploy of the materialized code, so the caller can load manifests as they are asked for. None when
    none carries ``code_version``.
    """
    since = None
    for at_ms, version in deploys:
        if version == materialized_code_version:
            break
        if version == code_version:
            since = at_ms
    return since


def staleness(
    *,
    materialized_at_ms: int | None,
    materialized_code_version: str | None,
    code_version: str | None,
    code_deploys: Iterable[Deploy],
    upstreams: Sequence[Upstream],
    partitioned: bool,
    freshness_minutes: int | None,
    as_of_ms: int,
) -> Staleness:
    """The first reason that holds, or fresh.

    ``code_version`` is the deployed transformFingerprint and ``code_deploys`` the asset's deploys, newest
    first (see ``code_changed_since``; read only when the code changed). A materialization whose code
    version was not recorded (before TaskDef carried it) is not called CODE_CHANGED: nothing says its
    code differed. ``freshness_minutes`` None means the default 1440; 0 turns the policy off; it applies
    to unpartitioned assets only.
    """
    if materialized_at_ms is None:
        return Staleness(True, "NEVER_MATERIALIZED")
    if (
        materialized_code_version is not None
        and code_version is not None
        and materialized_code_version != code_version
    ):
        since = code_changed_since(code_deploys, code_version, materialized_code_version)
        return Staleness(True, "CODE_CHANGED", since_ms=since)
    ordered = sorted(upstreams, key=lambda u: u.asset_key)
    never = [u for u in ordered if u.materialized_at_ms is None]
    if never:
        return Staleness(True, "UPSTREAM_NEVER_MATERIALIZED", upstream=never[0].asset_key)
    newer = [
        u for u in ordered if u.materialized_at_ms is not None and u.materialized_at_ms > materialized_at_ms
    ]
    if newer:
        first = min(newer, key=lambda u: (u.materialized_at_ms, u.asset_key))
        return Staleness(
            True, "UPSTREAM_CHANGED", since_ms=first.materialized_at_ms, upstream=first.asset_key
        )
    lag = DEFAULT_FRESHNESS_MINUTES if freshness_minutes is None else freshness_minutes
    if not partitioned and lag > 0:
        due = materialized_at_ms + lag * 60_000
        if as_of_ms > due:
            return Staleness(True, "FRESHNESS_POLICY", since_ms=due)
    return _FRESH


def stale_report(entries: Iterable[tuple[str, str, Staleness]]) -> list[tuple[str, str, Staleness]]:
    """The stale ``(asset_key, partition_key, staleness)`` entries in one stable order (asset, then
    partition, by bytes), so two reports at one ``asOf`` list the same lines in the same order."""
    stale = [e for e in entries if e[2].stale]
    return sorted(stale, key=lambda e: (e[0].encode("utf-8"), e[1].encode("utf-8")))
