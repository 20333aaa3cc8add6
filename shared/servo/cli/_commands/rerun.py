"""``servo rerun``: run an ended run's failed tasks again, or a subset of its plan (automation §8)."""

from __future__ import annotations

from typing import Any

import click

from servo.cli._app import State, api_options, client_from
from servo.cli._client import ApiError
from servo.cli._commands.runs import follow_created, parse_pairs, run_key_conflict
from servo.cli._complete import complete_asset_keys, complete_run_ids
from servo.cli._errors import CliError


@click.command("rerun")
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option("--from-failure", is_flag=True, help="Rerun every task of RUN_ID that did not succeed.")
@click.option(
    "-a",
    "--asset",
    "assets",
    multiple=True,
    metavar="KEY",
    shell_complete=complete_asset_keys,
    help="Rerun this task of RUN_ID (repeatable).",
)
@click.option("--include-downstream", is_flag=True, help="With --asset: also the run's tasks below it.")
@click.option("--include-upstream", is_flag=True, help="With --asset: also the run's tasks above it.")
@click.option("--run-key", metavar="KEY", help="Idempotency key (default: one derived from the rerun).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Run label (repeatable).")
@click.option("--wait", is_flag=True, help="Wait for the rerun to finish; exit 1 unless it SUCCEEDED.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON only.")
@api_options
@click.pass_obj
def rerun_command(
    state: State,
    run_id: str,
    from_failure: bool,
    assets: tuple[str, ...],
    labels: tuple[str, ...],
    wait: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Start a new run of RUN_ID's tasks: those that did not succeed (--from-failure) or the named
    ones (--asset). The new run reuses RUN_ID's plan (partition, retries) and records RUN_ID as its
    parent; repeating the same rerun answers the same run.

    \b
    Examples:
      servo rerun 01JD3F... --from-failure --wait
      servo rerun 01JD3F... --asset demo.b --include-downstream
    """  # fmt: skip
    if from_failure == bool(assets):
        raise CliError(
            "give either --from-failure or --asset KEY", hint="e.g. `servo rerun RUN --from-failure`"
        )
    up, down = kwargs.pop("include_upstream"), kwargs.pop("include_downstream")
    if from_failure and (up or down):
        raise CliError("--include-upstream/--include-downstream go with --asset, not --from-failure")
    body: dict[str, Any] = {"mode": "fromFailure"}
    if assets:
        body = {"mode": "subset", "selection": list(assets), "includeUpstream": up, "includeDownstream": down}
    run_key = kwargs.pop("run_key")
    if run_key:
        body["runKey"] = run_key
    label_map = parse_pairs(labels, "label", "--label team=data")
    if label_map:
        body["labels"] = label_map
    client = client_from(kwargs)
    try:
        created = client.rerun(run_id, body)
    except ApiError as exc:
        conflict = run_key_conflict(exc, run_key)
        if conflict is not None:
            raise conflict from None
        raise CliError(exc.message) from None
    kind = "from failure" if from_failure else "subset"
    note = f"[dim]Rerun ({kind}) of {created.get('parentRunId')}[/dim]"
    follow_created(state, client, created, as_json=as_json, wait=wait, note=note)


COMMANDS = (rerun_command,)
