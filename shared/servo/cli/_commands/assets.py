"""``servo asset list|show`` (automation §8): the catalog with partition status, lineage and staleness."""

from __future__ import annotations

from typing import Any

import click

from servo.cli._app import State, api_options, client_from
from servo.cli._commands._shared import JSON_OPTION, print_fields
from servo.cli._commands.runs import print_json
from servo.cli._render import plain_table as _table

PARTITION_STATUSES = ("NEVER_MATERIALIZED", "MATERIALIZED_BUT_LAST_ATTEMPT_FAILED", "STALE", "MATERIALIZED")


def _staleness(asset: dict[str, Any]) -> str:
    s = asset.get("staleness") or {}
    if not s.get("stale"):
        return "fresh"
    detail = [s["reason"]]
    if s.get("upstream"):
        detail.append(f"upstream {s['upstream']}")
    if s.get("since"):
        detail.append(f"since {s['since']}")
    return " ".join(detail)


def _counts(asset: dict[str, Any]) -> str:
    p = asset.get("partitions") or {}
    total = p.get("total")
    return f"{p.get('materialized', 0)} of {total if total is not None else 'unbounded'} materialized"


@click.group("asset")
def asset_group() -> None:
    """The deployed assets: what is materialized, what failed, what is stale, and from which attempt.

    \b
    Example:
      servo asset list --stale
      servo asset show sales.daily --status MATERIALIZED_BUT_LAST_ATTEMPT_FAILED
      servo asset show sales.daily --json
    """


_AS_OF = click.option("--as-of", "as_of", help="Judge staleness at this RFC 3339 time (default now).")


@asset_group.command("list")
@click.option("--stale", is_flag=True, help="Only stale assets.")
@click.option("--prefix", help="Only keys starting with this (a namespace such as sales.).")
@_AS_OF
@JSON_OPTION
@api_options
@click.pass_obj
def list_command(
    state: State, stale: bool, prefix: str | None, as_of: str | None, as_json: bool, **kwargs: Any
) -> None:
    """Every deployed asset with its partition counts, last materialization and staleness."""
    answer = client_from(kwargs).list_assets(stale=stale, prefix=prefix, as_of=as_of)
    if as_json:
        print_json(answer)
        return
    table = _table("ASSET", "PARTITIONS", "FAILED", "LAST MATERIALIZED", "RUN", "STALENESS")
    for a in answer.get("assets", []):
        last = a.get("lastMaterialization") or {}
        table.add_row(
            a["assetKey"],
            _counts(a),
            str((a.get("partitions") or {}).get("failed", 0)),
            last.get("at", "-"),
            last.get("runId", "-"),
            _staleness(a),
        )
    empty = "No stale assets." if stale else "No assets deployed."
    state.out.print(table if answer.get("assets") else empty)


@asset_group.command("show")
@click.argument("asset_key")
@click.option(
    "--status",
    type=click.Choice(PARTITION_STATUSES, case_sensitive=False),
    help="Only partitions in this status.",
)
@click.option("--stale", is_flag=True, help="Only stale partitions.")
@click.option(
    "-n", "limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="How many partitions."
)
@_AS_OF
@click.option(
    "--json", "as_json", is_flag=True, help="Print the asset's JSON, its partitions under partitionStatus."
)
@api_options
@click.pass_obj
def show_command(
    state: State,
    asset_key: str,
    status: str | None,
    stale: bool,
    limit: int,
    as_of: str | None,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """One asset: its summary, then its partitions with status and the attempt that made each."""
    client = client_from(kwargs)
    asset = client.get_asset(asset_key, as_of=as_of)
    partitions = client.asset_partitions(
        asset_key, limit, status=status.upper() if status else None, stale=stale, as_of=as_of
    )
    if as_json:
        print_json({**asset, "partitionStatus": partitions})
        return
    last = asset.get("lastMaterialization") or {}
    p = asset.get("partitions") or {}
    lines = [
        ("Asset", asset["assetKey"]),
        ("Code", asset.get("codeVersion", "-")),
        ("Upstream", ", ".join(asset.get("dependencies") or []) or "-"),
        ("Partitions", f"{_counts(asset)}, {p.get('failed', 0)} failed, {p.get('stale', 0)} stale"),
        ("Last", f"{last['at']} by run {last['runId']}" if last else "never materialized"),
        ("Staleness", _staleness(asset)),
    ]
    print_fields(state, lines)
    if not partitions:
        state.out.print("No partition attempted yet.")
        return
    table = _table("PARTITION", "STATUS", "MATERIALIZED", "RUN", "ATTEMPT", "LAST ATTEMPT")
    for row in partitions:
        mat = row.get("lastMaterialization") or {}
        attempt = row.get("lastAttempt") or {}
        words = row.get("partition") or {}
        table.add_row(
            ",".join(f"{k}={v}" for k, v in words.items()) or "(unpartitioned)",
            row["status"],
            mat.get("at", "-"),
            mat.get("runId", "-"),
            str(mat.get("attempt", "-")),
            f"{attempt.get('outcome', '-')} {attempt.get('runId', '')}".strip(),
        )
    state.out.print(table)


COMMANDS = (asset_group,)
