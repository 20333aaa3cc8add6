"""``servo init``, ``servo validate`` and ``servo deploy``: the project on disk and its manifest."""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from servo.cli._app import State, api_options, config_from
from servo.cli._client import ApiClient
from servo.cli._config import Config
from servo.cli._errors import CliError


def _key(asset: Mapping[str, Any]) -> str:
    key = asset.get("key")
    if isinstance(key, Mapping):
        return f"{key.get('namespace')}.{key.get('name')}"
    return str(key)


def _partitions(asset: Mapping[str, Any]) -> str:
    dims = (asset.get("partitioning") or {}).get("dimensions") or []
    return ", ".join(f"{d.get('name')}:{d.get('granularity') or d.get('kind')}" for d in dims) or "-"


def assets_table(manifest: Mapping[str, Any]) -> Table:
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("ASSET", "DEPENDS ON", "PARTITIONS", "RETRIES", "DEFINED AT"):
        table.add_column(column, overflow="fold")
    for asset in manifest.get("assets", []):
        deps = ", ".join(str(d.get("upstreamKey")) for d in asset.get("dependencies", [])) or "-"
        code = asset.get("code") or {}
        where = f"{code.get('filePath')}:{code.get('lineNumber')}" if code.get("filePath") else "-"
        retries = (asset.get("execution") or {}).get("maxRetries", "-")
        table.add_row(_key(asset), deps, _partitions(asset), str(retries), where)
    return table


def build_project_manifest(config: Config) -> tuple[dict[str, Any], bytes]:
    """Discover, validate and build the project's manifest; every problem is one ``file:line`` line.

    Stable asset ids live in the project's lockfile (``.servo/state.json``), written on every build.
    """
    root = config.require_project()
    from servo import sdk

    # Every problem at once: an import failure in one file does not hide a bad graph in another.
    found = sdk.discover_assets(root)
    problems = [str(p) for p in found.problems]
    definitions = found.definitions()
    if definitions:
        try:
            sdk.validate_assets(definitions)
        except sdk.ManifestValidationError as exc:
            problems.extend(str(p) for p in exc.details.get("problems") or [exc.message])
    if problems:
        raise CliError("\n".join(problems))
    if not definitions:
        raise CliError(f"no assets found in {root}", hint="define @asset functions under assets/")
    try:
        keys = [str(d.key) for d in definitions]
        ids = sdk.assign_asset_ids(keys, sdk.load_asset_ids(root))
        now_ms = time.time_ns() // 1_000_000
        # The code's own digest, not a fresh id: the worker computes the same from what it loaded.
        version = sdk.code_version(root)
        manifest = sdk.build_manifest(
            definitions,
            tenant_id=config.tenant,
            workspace_id=config.workspace,
            code_version_id=version,
            git=sdk.git_info(root),
            deployed_by=getpass.getuser(),
            deployed_at_ms=now_ms,
            asset_ids=ids,
            project_root=root,
            schedules=found.schedule_definitions(),
            sensors=found.sensor_definitions(),
        )
    except (sdk.DiscoveryError, sdk.ManifestValidationError) as exc:
        problems = exc.details.get("problems") or [exc.message]
        raise CliError("\n".join(str(p) for p in problems)) from None
    sdk.save_asset_ids(root, ids)
    return manifest, sdk.manifest_bytes(manifest)


@click.command("init")
@click.argument("name", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def init_command(state: State, name: Path) -> None:
    """Create a new project NAME with an example A -> B -> C asset chain and a worker Dockerfile.

    \b
    Example:
      servo init my_project && cd my_project && servo validate
    """
    from servo.cli._scaffold import namespace_for, scaffold

    target = name.resolve()
    written = scaffold(target)
    state.out.print(f"Created project [bold]{target.name}[/bold] in {target}:")
    for path in written:
        state.out.print(f"  {path.relative_to(target)}")
    ns = namespace_for(target.name)
    state.out.print(
        f"\nNext:\n  cd {name}\n  servo dev            # in another terminal\n  servo deploy\n"
        f"  servo run {ns}.raw --include-downstream --wait"
    )


@click.command("validate")
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project directory (default: nearest folder with servo.toml).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest JSON that deploy would send.")
@click.pass_obj
def validate_command(state: State, project: Path | None, as_json: bool) -> None:
    """Check the project's assets locally: imports, keys, dependencies, cycles, partitions.

    \b
    Example:
      servo validate
    """
    config = config_from({"project": project})
    manifest, data = build_project_manifest(config)
    if as_json:
        click.echo(data.decode())
        return
    state.out.print(assets_table(manifest))
    count = len(manifest.get("assets", []))
    state.out.print(
        f"[green]✓[/green] {count} asset{'s' if count != 1 else ''} valid in {config.project_dir}"
    )


@click.command("deploy")
@click.option("--dry-run", is_flag=True, help="Build and show the manifest without uploading it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON only (the API's answer, or the manifest).")
@api_options
@click.pass_obj
def deploy_command(state: State, dry_run: bool, as_json: bool, **kwargs: Any) -> None:
    """Build the project's asset-graph manifest and deploy it to the workspace.

    \b
    Examples:
      servo deploy
      servo deploy --dry-run
      servo deploy -w staging --json
    """
    config = config_from(kwargs)
    manifest, data = build_project_manifest(config)
    if dry_run:
        if as_json:
            click.echo(data.decode())
            return
        state.out.print(assets_table(manifest))
        state.out.print(f"[dim]dry run: {len(manifest.get('assets', []))} assets, nothing deployed[/dim]")
        return
    answer = ApiClient(config).deploy(data)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    state.out.print(
        f"Deployed {answer.get('assetCount')} assets to workspace [bold]{config.workspace}[/bold]: "
        f"manifest [bold]{answer.get('manifestId')}[/bold]"
    )
    state.out.print(f"[dim]code version {answer.get('codeVersionId')} · {answer.get('fingerprint')}[/dim]")


COMMANDS = (init_command, validate_command, deploy_command)
