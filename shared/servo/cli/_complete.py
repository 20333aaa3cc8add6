"""Shell completion of what only the API knows: the deployed asset keys and recent run ids.

Click calls these while the shell waits, so a failure (no `servo dev` running, no project) completes
nothing rather than printing an error into the prompt.
"""

from __future__ import annotations

from typing import Any

import click

from servo.cli._client import ApiClient
from servo.cli._config import resolve_config
from servo.cli._errors import CliError

RECENT_RUNS = 50


def _client(ctx: click.Context) -> ApiClient:
    flags = {name: ctx.params.get(name) for name in ("api_url", "workspace", "tenant")}
    return ApiClient(resolve_config(flags, project=ctx.params.get("project")))


def complete_asset_keys(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    try:
        current = _client(ctx).current_manifest() or {}
    except CliError:
        return []
    keys: list[str] = []
    for asset in current.get("manifest", {}).get("assets", []):
        key: Any = asset.get("key")
        text = f"{key.get('namespace')}.{key.get('name')}" if isinstance(key, dict) else str(key)
        if text.startswith(incomplete):
            keys.append(text)
    return sorted(keys)


def complete_run_ids(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    try:
        runs = _client(ctx).list_runs(RECENT_RUNS).get("runs", [])
    except CliError:
        return []
    return [str(r["runId"]) for r in runs if str(r.get("runId", "")).startswith(incomplete)]
