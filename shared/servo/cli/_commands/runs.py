"""``servo run``, ``servo status`` and ``servo cancel``."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import click
from rich.live import Live

from servo.cli._app import State, api_options, client_from
from servo.cli._client import TERMINAL_RUN_STATES, ApiClient, ApiError
from servo.cli._complete import complete_asset_keys, complete_run_ids
from servo.cli._errors import CliError
from servo.cli._render import local_datetime, run_detail, runs_table, state_text

POLL_INTERVAL_S = 0.5
UNSUCCESSFUL_RUN_STATES = frozenset({"FAILED", "CANCELLED", "TIMED_OUT"})
MAX_RUN_KEY_RETRIES = 100
VISIBILITY_GRACE_S = 30.0


def print_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False))


def parse_pairs(raw: Sequence[str], what: str, example: str) -> dict[str, str]:
    """``key=value`` options into a dict; a malformed or repeated key is one clear error."""
    pairs: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not value:
            raise CliError(f"malformed {what} {item!r}: expected key=value (e.g. {example})")
        if key in pairs:
            raise CliError(f"{what} {key!r} given twice")
        pairs[key] = value
    return pairs


def _manifest_assets(client: ApiClient) -> dict[str, Mapping[str, Any]]:
    current = client.current_manifest()
    if current is None:
        raise CliError(
            f"no manifest deployed in workspace '{client.config.workspace}'", hint="run `servo deploy` first"
        )
    assets: dict[str, Mapping[str, Any]] = {}
    for asset in current.get("manifest", {}).get("assets", []):
        key = asset.get("key")
        if isinstance(key, Mapping):
            assets[f"{key.get('namespace')}.{key.get('name')}"] = asset
        elif isinstance(key, str):
            assets[key] = asset
    return assets


def partition_key(client: ApiClient, selection: Sequence[str], values: Mapping[str, str]) -> str:
    """The canonical partition key; values are tagged by the deployed dimension kind, never blindly ``s:``."""
    from servo.core.keys import canonical_asset_key

    assets = _manifest_assets(client)
    keys = [canonical_asset_key(s) for s in selection]
    unknown = sorted(k for k in keys if k not in assets)
    if unknown:
        from servo.core.planner import unknown_keys_message

        raise CliError(unknown_keys_message(unknown, assets))
    partitioning = assets[keys[0]].get("partitioning") or {}
    dimensions = partitioning.get("dimensions") or []
    if not dimensions:
        raise CliError(f"asset {keys[0]} is not partitioned; drop -p/--partition")
    from servo.sdk import partition_key_from_cli

    return str(partition_key_from_cli(dimensions, dict(values)))


def get_run_eventually(client: ApiClient, run_id: str, grace_s: float = VISIBILITY_GRACE_S) -> dict[str, Any]:
    """GetRun, tolerating 404 for a while: in GCP a new run is visible only once compaction ran."""
    deadline = time.monotonic() + grace_s
    while True:
        try:
            return client.get_run(run_id)
        except ApiError as exc:
            if exc.status != 404 or time.monotonic() >= deadline:
                raise
        time.sleep(POLL_INTERVAL_S)


def wait_for_run(client: ApiClient, state: State, run_id: str, *, live: bool) -> dict[str, Any]:
    """Poll until the run is terminal, redrawing its task table when attached to a terminal."""
    console = state.out
    run = get_run_eventually(client, run_id)
    if not (live and console.is_terminal):
        while run.get("state") not in TERMINAL_RUN_STATES:
            time.sleep(POLL_INTERVAL_S)
            run = client.get_run(run_id)
        return run
    with Live(run_detail(run), console=console, refresh_per_second=4, transient=True) as view:
        while run.get("state") not in TERMINAL_RUN_STATES:
            time.sleep(POLL_INTERVAL_S)
            run = client.get_run(run_id)
            view.update(run_detail(run))
    return run


@click.command("run")
@click.argument("assets", nargs=-1, required=True, metavar="ASSET...", shell_complete=complete_asset_keys)
@click.option("--include-upstream", is_flag=True, help="Also run everything the selection depends on.")
@click.option("--include-downstream", is_flag=True, help="Also run everything that depends on the selection.")
@click.option(
    "-p",
    "--partition",
    "partitions",
    multiple=True,
    metavar="KEY=VALUE",
    help="Partition dimension value, typed by the asset's dimension (repeatable).",
)
@click.option("--run-key", metavar="KEY", help="Idempotency key: the same key returns the same run.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="When the run key's run ended FAILED, CANCELLED or TIMED_OUT, run again under KEY#2 (then #3...).",
)
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Run label (repeatable).")
@click.option(
    "--timeout",
    "timeout",
    type=click.IntRange(1, 7 * 86400),
    metavar="SECONDS",
    help="Fail the run as TIMED_OUT after this many seconds.",
)
@click.option("--wait", is_flag=True, help="Wait for the run to finish; exit 1 unless it SUCCEEDED.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON only.")
@click.option(
    "-q", "--quiet", is_flag=True, help="Print the run id only (for scripts: RUN=$(servo run -q ...))."
)
@api_options
@click.pass_obj
def run_command(
    state: State,
    assets: tuple[str, ...],
    partitions: tuple[str, ...],
    labels: tuple[str, ...],
    as_json: bool,
    wait: bool,
    quiet: bool,
    **kwargs: Any,
) -> None:
    """Trigger a run of ASSET... (keys like ns.name); only the named assets run unless widened.

    \b
    Examples:
      servo run demo.a
      servo run demo.a --include-downstream --wait
      servo run sales.daily -p date=2025-01-15 --run-key daily-2025-01-15
    """  # fmt: skip
    values = parse_pairs(partitions, "partition", "-p date=2025-01-15")
    label_map = parse_pairs(labels, "label", "--label team=data")
    client = client_from(kwargs)
    body: dict[str, Any] = {
        "selection": list(assets),
        "includeUpstream": kwargs["include_upstream"],
        "includeDownstream": kwargs["include_downstream"],
    }
    if values:
        body["partitionKey"] = partition_key(client, assets, values)
    if kwargs["run_key"]:
        body["runKey"] = kwargs["run_key"]
    if label_map:
        body["labels"] = label_map
    if kwargs["timeout"]:
        body["timeoutSeconds"] = kwargs["timeout"]
    if kwargs["retry_failed"] and not kwargs["run_key"]:
        raise CliError("--retry-failed needs --run-key", hint="without a run key every run is a new one")
    created = _trigger(client, body)
    key = kwargs["run_key"]
    if kwargs["retry_failed"]:
        created, key = _past_unsuccessful(client, body, created)
    note = None
    if key != kwargs["run_key"]:
        note = f"[dim]Run key {key}: the runs of the earlier keys ended without success.[/dim]"
    follow_created(state, client, created, as_json=as_json, wait=wait, quiet=quiet, note=note)


def follow_created(
    state: State,
    client: ApiClient,
    created: Mapping[str, Any],
    *,
    as_json: bool,
    wait: bool,
    quiet: bool = False,
    note: str | None = None,
) -> None:
    """Say which run a trigger answered (new or the run key's), then follow it when asked to wait:
    exit 1 unless it SUCCEEDED."""
    run_id = str(created["runId"])
    if quiet:
        click.echo(run_id)
        if wait:
            _require_success(wait_for_run(client, state, run_id, live=False))
        return
    if not as_json:
        verb = "Created run" if created.get("created", True) else "Existing run (run key matched)"
        line = state.out
        line.print(f"{verb} [bold]{run_id}[/bold] (plan {created.get('planId')}) ", end="")
        line.print(state_text(str(created.get("state"))))
        if note:
            line.print(note)
    if not wait:
        if as_json:
            print_json(created)
        else:
            state.out.print(f"[dim]Follow it with `servo status {run_id} --watch`.[/dim]")
        return
    final = wait_for_run(client, state, run_id, live=not as_json)
    if as_json:
        print_json(final)
    else:
        state.out.print(run_detail(final))
    _require_success(final)


def run_key_conflict(exc: ApiError, run_key: Any) -> CliError | None:
    """The CLI's words for a run key already holding another run's payload (409), else None."""
    if exc.details.get("conflictType") != "RUN_KEY_FINGERPRINT_MISMATCH":
        return None
    holder = exc.details.get("existingRunId")
    since = local_datetime(exc.details.get("existingCreatedAt"))
    return CliError(
        f"run key '{run_key}' is held by run {holder} (created {since}) "
        "for other assets, partition or labels",
        hint=f"see it with `servo status {holder}`, or pick another --run-key",
    )


def _trigger(client: ApiClient, body: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return client.trigger(body)
    except ApiError as exc:
        conflict = run_key_conflict(exc, body.get("runKey"))
        if conflict is not None:
            raise conflict from None
        # The API speaks of its body field; the user typed flags.
        raise CliError(exc.message.replace("pass partitionKey", "pass -p NAME=VALUE")) from None


def _past_unsuccessful(
    client: ApiClient, body: Mapping[str, Any], answer: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """--retry-failed: while the key's run ended without success, try the key's next retry, ``KEY#2``,
    ``KEY#3``... Each retry key is itself idempotent, so a script re-run after a failure starts one
    new run, and re-run again answers with that run until it too has failed."""
    base = key = str(body["runKey"])
    for number in range(2, MAX_RUN_KEY_RETRIES + 2):
        if answer.get("created", True) or answer.get("state") not in UNSUCCESSFUL_RUN_STATES:
            return answer, key
        key = f"{base}#{number}"
        answer = _trigger(client, {**body, "runKey": key})
    raise CliError(
        f"run key '{base}' has failed {MAX_RUN_KEY_RETRIES + 1} times", hint="pick another --run-key"
    )


def _require_success(run: Mapping[str, Any]) -> None:
    if run.get("state") != "SUCCEEDED":
        run_id = run.get("runId")
        raise CliError(f"run {run_id} ended {run.get('state')}", hint=f"see `servo logs {run_id}`")


def _details(client: ApiClient, runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """GetRun of each listed run, concurrently: a list row has no assets or partition of its own."""
    from concurrent.futures import ThreadPoolExecutor

    def one(run_id: str) -> dict[str, Any] | None:
        try:
            return client.get_run(run_id)
        except ApiError:
            return None  # e.g. not yet visible: the row still shows what the list knows

    ids = [str(run.get("runId")) for run in runs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(ids, pool.map(one, ids), strict=True))


@click.command("status")
@click.argument("run_id", required=False, shell_complete=complete_run_ids)
@click.option("--watch", is_flag=True, help="Refresh live until the run is finished.")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, 200),
    default=10,
    show_default=True,
    help="How many recent runs to list.",
)
@click.option(
    "--state",
    "run_state",
    type=click.Choice(
        ["PENDING", "RUNNING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"],
        case_sensitive=False,
    ),
    help="List only runs in this state.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON only.")
@api_options
@click.pass_obj
def status_command(
    state: State,
    run_id: str | None,
    watch: bool,
    limit: int,
    run_state: str | None,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Show recent runs, or one run's tasks (state, attempt, timing, error or skip reason, a running
    task's last reported progress) followed by each failed task's traceback.

    \b
    Examples:
      servo status                    # the 10 most recent runs
      servo status -n 50 --state FAILED
      servo status 01JD3F... --watch  # live task table until the run finishes
    """  # fmt: skip
    client = client_from(kwargs)
    if run_id is None:
        if watch:
            raise CliError("--watch needs a RUN_ID", hint="e.g. `servo status RUN_ID --watch`")
        listing = client.list_runs(limit, run_state.upper() if run_state else None)
        if as_json:
            print_json(listing)
        elif not listing.get("runs"):
            state.out.print("No runs yet. Start one with `servo run ASSET`.")
        else:
            state.out.print(runs_table(listing["runs"], _details(client, listing["runs"])))
        return
    run = wait_for_run(client, state, run_id, live=not as_json) if watch else client.get_run(run_id)
    if as_json:
        print_json(run)
    else:
        state.out.print(run_detail(run))


@click.command("cancel")
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option("--reason", help="Why the run is cancelled (recorded in the ledger).")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON only.")
@api_options
@click.pass_obj
def cancel_command(state: State, run_id: str, reason: str | None, as_json: bool, **kwargs: Any) -> None:
    """Cancel a run: queued tasks stop at once, running ones at their next heartbeat.

    \b
    Example:
      servo cancel 01JD3F... --reason "wrong date"
    """
    answer = client_from(kwargs).cancel(run_id, reason)
    if as_json:
        print_json(answer)
        return
    state.out.print(f"Run [bold]{run_id}[/bold] ", end="")
    state.out.print(state_text(str(answer.get("state"))))
    if answer.get("state") == "CANCELLING":
        # A request, not an outcome: a task that completes before it sees the cancel keeps its result.
        state.out.print(
            "[dim]Cancel requested: running tasks stop within the cancel grace period; one that completes "
            "first keeps its result, so the run may still end SUCCEEDED or FAILED.[/dim]"
        )


COMMANDS = (run_command, status_command, cancel_command)
