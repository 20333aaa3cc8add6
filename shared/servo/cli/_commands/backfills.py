"""``servo backfill create|list|show|pause|resume|cancel|retry-failed`` (automation §8)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from servo.cli._app import State, api_options, client_from
from servo.cli._client import ApiClient
from servo.cli._commands._shared import JSON_OPTION, print_fields
from servo.cli._commands.runs import POLL_INTERVAL_S, _manifest_assets, parse_pairs, print_json
from servo.cli._complete import complete_asset_keys
from servo.cli._errors import CliError
from servo.cli._render import state_text

STATES = ("PENDING", "RUNNING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED")
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
_ID = click.argument("backfill_id", metavar="BACKFILL_ID")


@click.group("backfill")
def backfill_group() -> None:
    """Fill partitions of assets: a range or a list, in chunks, at most N runs at a time.

    \b
    Example:
      servo backfill create daily.asset --from 2025-01-01 --to 2025-01-31 --wait
      servo backfill create daily.asset --partition 2025-01-03 --partition 2025-01-09
      servo backfill show BACKFILL_ID
      servo backfill retry-failed BACKFILL_ID --wait
    """


def _partition_keys(client: ApiClient, assets: Sequence[str], raw: Sequence[str]) -> list[str]:
    """Canonical keys for ``--partition`` values: ``name=value[,name=value]``, or a bare value when the
    assets have one dimension."""
    from servo.core.errors import InvalidInput
    from servo.core.keys import canonical_asset_key
    from servo.sdk import partition_key_from_cli

    deployed = _manifest_assets(client)
    first = deployed.get(canonical_asset_key(assets[0]))
    if first is None:
        raise CliError(f"asset {assets[0]} is not deployed", hint="see `servo status` or deploy it first")
    dims = (first.get("partitioning") or {}).get("dimensions") or []
    if not dims:
        raise CliError(
            f"asset {assets[0]} is not partitioned; a backfill is over partitions (use `servo run`)"
        )
    keys = []
    for text in raw:
        pairs = text.split(",") if "=" in text else [f"{dims[0]['name']}={text}"]
        try:
            keys.append(
                str(partition_key_from_cli(dims, parse_pairs(pairs, "partition", "-p date=2025-01-15")))
            )
        except InvalidInput as exc:
            raise CliError(f"--partition {text}: {exc.message}") from None
    return keys


def _bar(backfill: Mapping[str, Any]) -> str:
    counts = backfill.get("partitionCounts") or {}
    total = counts.get("total", 0)
    done = sum(counts.get(k, 0) for k in ("succeeded", "failed", "cancelled"))
    parts = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("succeeded", "failed", "running"))
    return f"{done}/{total} partitions done ({parts})"


def _progress(state: State) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        console=state.out,
        transient=False,
    )


def _done(backfill: Mapping[str, Any]) -> int:
    counts = backfill.get("partitionCounts") or {}
    return sum(counts.get(k, 0) for k in ("succeeded", "failed", "cancelled"))


def _detail(backfill: Mapping[str, Any]) -> str:
    counts = backfill.get("partitionCounts") or {}
    return f"{backfill.get('state')}  failed {counts.get('failed', 0)}  running {counts.get('running', 0)}"


def _wait(client: ApiClient, state: State, backfill_id: str, *, live: bool) -> dict[str, Any]:
    """Poll until the backfill is terminal; a progress bar when attached to a terminal."""
    backfill = client.get_backfill(backfill_id)
    if not (live and state.out.is_terminal):
        while backfill["state"] not in TERMINAL:
            time.sleep(POLL_INTERVAL_S)
            backfill = client.get_backfill(backfill_id)
        return backfill
    with _progress(state) as progress:
        task = progress.add_task(backfill_id, total=backfill["totalPartitions"], detail=_detail(backfill))
        while True:
            progress.update(task, completed=_done(backfill), detail=_detail(backfill))
            if backfill["state"] in TERMINAL:
                return backfill
            time.sleep(POLL_INTERVAL_S)
            backfill = client.get_backfill(backfill_id)


def _finish(state: State, client: ApiClient, answer: Mapping[str, Any], *, wait: bool, as_json: bool) -> None:
    backfill_id = answer["backfillId"]
    if not wait:
        if as_json:
            print_json(answer)
        else:
            word = "Created" if answer.get("created") else "Already created"
            state.out.print(
                f"{word} backfill [bold]{backfill_id}[/bold]; "
                f"follow it with `servo backfill show {backfill_id}`."
            )
        return
    if not as_json:
        state.out.print(
            f"Backfill [bold]{backfill_id}[/bold] {'created' if answer.get('created') else 'exists'}; "
            "waiting for it to finish."
        )
    final = _wait(client, state, backfill_id, live=not as_json)
    if as_json:
        print_json(final)
    else:
        state.out.print(f"Backfill {backfill_id} ", state_text(final["state"]), f": {_bar(final)}")
    if final["state"] != "SUCCEEDED":
        raise CliError(
            f"backfill {backfill_id} ended {final['state']}",
            hint=f"retry the failed partitions with `servo backfill retry-failed {backfill_id}`"
            if final["state"] == "FAILED"
            else None,
        )


@backfill_group.command("create")
@click.argument("assets", nargs=-1, required=True, metavar="ASSET...", shell_complete=complete_asset_keys)
@click.option(
    "--from", "start", metavar="START", help="First partition of the range (inclusive), e.g. 2025-01-01."
)
@click.option("--to", "end", metavar="END", help="Last partition of the range (inclusive).")
@click.option(
    "--partition",
    "-p",
    "partitions",
    multiple=True,
    metavar="KEY",
    help="One partition (repeatable): a value, or name=value[,name=value].",
)
@click.option("--chunk-size", type=click.IntRange(1, 100), help="Partitions per chunk (default 5).")
@click.option(
    "--max-concurrent", type=click.IntRange(1, 100), help="Most runs at once (default max(10, chunk size))."
)
@click.option(
    "--label", "labels", multiple=True, metavar="KEY=VALUE", help="A label on every run (repeatable)."
)
@click.option("--key", "key", help="Idempotency key: the same key and request name the same backfill.")
@click.option("--wait", is_flag=True, help="Wait for the backfill to finish; exit 1 unless it SUCCEEDED.")
@JSON_OPTION
@api_options
@click.pass_obj
def create_command(
    state: State,
    assets: tuple[str, ...],
    start: str | None,
    end: str | None,
    partitions: tuple[str, ...],
    chunk_size: int | None,
    max_concurrent: int | None,
    labels: tuple[str, ...],
    key: str | None,
    wait: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Backfill ASSET... over --from START --to END, or the --partition keys given."""
    if partitions and (start or end):
        raise CliError("give either --from/--to or --partition, not both")
    if not partitions and not (start and end):
        raise CliError("give a range with --from START --to END, or partitions with --partition KEY")
    client = client_from(kwargs)
    body: dict[str, Any] = {"assets": list(assets)}
    if partitions:
        body["partitions"] = {"explicit": _partition_keys(client, assets, partitions)}
    else:
        body["partitions"] = {"range": {"start": start, "end": end}}
    if chunk_size is not None:
        body["chunkSize"] = chunk_size
    if max_concurrent is not None:
        body["maxConcurrentRuns"] = max_concurrent
    if labels:
        body["labels"] = parse_pairs(labels, "label", "--label team=data")
    answer = client.create_backfill(body, key or str(uuid.uuid4()))
    _finish(state, client, answer, wait=wait, as_json=as_json)


@backfill_group.command("list")
@click.option(
    "--state", "wanted", type=click.Choice(STATES, case_sensitive=False), help="Only backfills in this state."
)
@click.option(
    "-n", "limit", type=click.IntRange(1, 200), default=20, show_default=True, help="How many backfills."
)
@JSON_OPTION
@api_options
@click.pass_obj
def list_command(state: State, wanted: str | None, limit: int, as_json: bool, **kwargs: Any) -> None:
    """The workspace's backfills, newest first, with their progress."""
    answer = client_from(kwargs).list_backfills(limit, wanted.upper() if wanted else None)
    if as_json:
        print_json(answer)
        return
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("BACKFILL", "STATE", "ASSETS", "PROGRESS", "CREATED"):
        table.add_column(column, overflow="fold")
    for b in answer.get("backfills", []):
        table.add_row(
            b["backfillId"], state_text(b["state"]), ", ".join(b["assets"]), _bar(b), b.get("createdAt", "-")
        )
    state.out.print(table if answer.get("backfills") else "No backfills yet.")


@backfill_group.command("show")
@_ID
@JSON_OPTION
@api_options
@click.pass_obj
def show_command(state: State, backfill_id: str, as_json: bool, **kwargs: Any) -> None:
    """One backfill: state, settings, progress and its transitions (a progress bar in a terminal)."""
    b = client_from(kwargs).get_backfill(backfill_id)
    if as_json:
        print_json(b)
        return
    lines = [
        ("Backfill", b["backfillId"]),
        ("Assets", ", ".join(b["assets"])),
        (
            "Partitions",
            f"{b['totalPartitions']} in chunks of {b['chunkSize']}, "
            f"at most {b['maxConcurrentRuns']} runs at once",
        ),
        ("Progress", _bar(b)),
        ("Chunks", ", ".join(f"{v} {k}" for k, v in b["chunkCounts"].items() if v and k != "total") or "-"),
    ]
    if b.get("parentBackfillId"):
        lines.append(("Retry of", b["parentBackfillId"]))
    state.out.print(f"[bold]{'State:':<12}[/bold]", state_text(b["state"]), f" (version {b['stateVersion']})")
    print_fields(state, lines)
    if state.out.is_terminal and b["state"] not in TERMINAL:
        with _progress(state) as progress:
            progress.add_task(
                b["backfillId"], total=b["totalPartitions"], completed=_done(b), detail=_detail(b)
            )
    for t in b.get("transitions", []):
        note = "" if t["applied"] else " (not applied: the backfill had moved)"
        reason = f" - {t['reason']}" if t.get("reason") else ""
        state.out.print(f"  v{t['stateVersion']}: {t['from']} -> {t['to']}{note}{reason}")


def _move_command(action: str, doc: str) -> None:
    @backfill_group.command(action, help=doc)
    @_ID
    @click.option("--reason", help="Why (kept with the transition).")
    @click.option(
        "--expect-version", "expected", type=int, help="Refuse unless the backfill is at this state version."
    )
    @JSON_OPTION
    @api_options
    @click.pass_obj
    def command(
        state: State, backfill_id: str, reason: str | None, expected: int | None, as_json: bool, **kwargs: Any
    ) -> None:
        body: dict[str, Any] = {}
        if reason:
            body["reason"] = reason
        if expected is not None:
            body["expectedStateVersion"] = expected
        answer = client_from(kwargs).move_backfill(backfill_id, action, body)
        if as_json:
            print_json(answer)
        elif answer.get("changed") is False:
            state.out.print(f"Backfill {backfill_id} already {answer['to']}; nothing changed.")
        else:
            state.out.print(
                f"Backfill {backfill_id}: {answer['from']} -> {answer['to']} "
                f"(version {answer['stateVersion']})."
            )


_move_command("pause", "Stop planning new chunks; the runs already started go on.")
_move_command("resume", "Plan chunks again after a pause.")
_move_command("cancel", "Stop planning and cancel the backfill's active runs.")


@backfill_group.command("retry-failed")
@_ID
@click.option(
    "--chunk-size", type=click.IntRange(1, 100), help="Partitions per chunk (default: the parent's)."
)
@click.option(
    "--max-concurrent", type=click.IntRange(1, 100), help="Most runs at once (default: the parent's)."
)
@click.option("--wait", is_flag=True, help="Wait for the retry to finish; exit 1 unless it SUCCEEDED.")
@JSON_OPTION
@api_options
@click.pass_obj
def retry_failed_command(
    state: State,
    backfill_id: str,
    chunk_size: int | None,
    max_concurrent: int | None,
    wait: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """A new backfill of exactly the partitions of a FAILED backfill that did not succeed."""
    body: dict[str, Any] = {}
    if chunk_size is not None:
        body["chunkSize"] = chunk_size
    if max_concurrent is not None:
        body["maxConcurrentRuns"] = max_concurrent
    client = client_from(kwargs)
    # One key per parent and settings: running the command again names the same child.
    key = f"retry-failed:{backfill_id}:{chunk_size or ''}:{max_concurrent or ''}"
    _finish(state, client, client.retry_failed_backfill(backfill_id, body, key), wait=wait, as_json=as_json)


COMMANDS = (backfill_group,)
