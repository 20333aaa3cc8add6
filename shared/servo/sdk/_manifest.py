"""The deploy manifest (user-surface §2): camelCase JSON built from definitions, plus stable asset ids.

Asset ids live in a lockfile ``.servo/state.json`` (``{"version": "1.0", "assetIds": {key: uuid7}}``) so
an asset keeps its id across builds; renaming an asset gives it a new id.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servo.core.canonical_json import canonical_bytes
from servo.core.errors import InvalidSchedule
from servo.core.keys import AssetKey
from servo.core.timefmt import format_timestamp
from servo.sdk._asset import AssetDefinition, definition_of
from servo.sdk._errors import ManifestValidationError
from servo.sdk._schedules import schedule_of
from servo.sdk._sensors import sensor_of
from servo.sdk._validate import validate_assets

MANIFEST_VERSION = "1.0"
STATE_FILE = Path(".servo") / "state.json"
STATE_VERSION = "1.0"
_UUID7_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

logger = logging.getLogger(__name__)


def new_uuid7(now_ms: int | None = None, random_bytes: bytes | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix ms, version 7, 74 random bits, variant 10; lowercase."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = int.from_bytes(random_bytes if random_bytes is not None else secrets.token_bytes(10), "big")
    value = (
        (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62 | rand & (2**62 - 1)
    )
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def load_asset_ids(root: Path) -> dict[str, str]:
    """The lockfile's asset ids; a missing file is empty, a corrupt one is logged and treated as empty."""
    path = Path(root) / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s (%s); asset ids will be reassigned", path, exc)
        return {}
    ids = state.get("assetIds") if isinstance(state, dict) else None
    if not isinstance(ids, dict):
        logger.warning("ignoring %s without an assetIds object; asset ids will be reassigned", path)
        return {}
    valid = {k: v for k, v in ids.items() if isinstance(v, str) and _UUID7_RE.fullmatch(v)}
    if len(valid) != len(ids):
        logger.warning("ignoring %d malformed asset id(s) in %s", len(ids) - len(valid), path)
    return valid


def save_asset_ids(root: Path, ids: Mapping[str, str]) -> Path:
    """Write the lockfile (indented, sorted, atomically replaced) and return its path."""
    path = Path(root) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"version": STATE_VERSION, "assetIds": dict(ids)}, indent=2, sort_keys=True) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, path)
    return path


def assign_asset_ids(
    keys: Iterable[str], existing: Mapping[str, str], uuid7_factory: Callable[[], str] = new_uuid7
) -> dict[str, str]:
    """An id for each key: the existing one if any, else a fresh UUIDv7 (keys in sorted order)."""
    return {key: existing.get(key) or uuid7_factory() for key in sorted(set(keys))}


@dataclass(frozen=True, slots=True)
class GitInfo:
    repository: str = ""
    branch: str = ""
    commit_sha: str = ""
    commit_message: str = ""
    author: str = ""
    dirty: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "branch": self.branch,
            "commitSha": self.commit_sha,
            "commitMessage": self.commit_message,
            "author": self.author,
            "dirty": self.dirty,
        }


def git_info(root: Path) -> GitInfo:
    """What git says about ``root``'s checkout; an empty GitInfo if git is missing or it is no repo."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        return GitInfo(
            repository=_quiet(git, "config", "--get", "remote.origin.url"),
            branch=_quiet(git, "rev-parse", "--abbrev-ref", "HEAD"),
            commit_sha=sha,
            commit_message=_quiet(git, "log", "-1", "--format=%s"),
            author=_quiet(git, "log", "-1", "--format=%an <%ae>"),
            dirty=bool(_quiet(git, "status", "--porcelain", "--untracked-files=no")),
        )
    except (OSError, subprocess.SubprocessError):
        return GitInfo()


def _quiet(git: Callable[..., str], *args: str) -> str:
    try:
        return git(*args)
    except (OSError, subprocess.SubprocessError):
        return ""


def _file_path(path: str, project_root: Path | None) -> str:
    if project_root is not None:
        try:
            return Path(path).resolve().relative_to(Path(project_root).resolve()).as_posix()
        except ValueError:
            pass
    return path


def asset_manifest(
    definition: AssetDefinition, asset_id: str, project_root: Path | None = None
) -> dict[str, Any]:
    """One asset's manifest entry (camelCase)."""
    entry: dict[str, Any] = {
        "key": {"namespace": definition.key.namespace, "name": definition.key.name},
        "id": asset_id,
        "description": definition.description,
        "owners": list(definition.owners),
        "tags": dict(definition.tags),
        "partitioning": {
            "isPartitioned": bool(definition.partitions),
            "dimensions": [d.to_manifest() for d in definition.partitions],
        },
        "dependencies": [
            {"upstreamKey": str(dep.upstream_key), "mapping": dep.mapping}
            | ({"parameterName": dep.parameter_name} if dep.parameter_name else {})
            for dep in definition.deps
        ],
        "code": {
            "module": definition.code.module,
            "function": definition.code.function,
            "filePath": _file_path(definition.code.file_path, project_root),
            "lineNumber": definition.code.line_number,
        },
        "execution": {"maxRetries": definition.max_retries, "timeoutSeconds": definition.timeout_seconds},
        "resources": {
            "cpuMillicores": definition.resources.cpu_millicores,
            "memoryMib": definition.resources.memory_mib,
        },
        "transformFingerprint": definition.transform_fingerprint,
    }
    if definition.freshness_minutes is not None:
        entry["freshnessMinutes"] = definition.freshness_minutes
    return entry


def build_manifest(
    assets: Iterable[object],
    *,
    tenant_id: str,
    workspace_id: str,
    code_version_id: str,
    git: GitInfo | None,
    deployed_by: str,
    deployed_at_ms: int,
    asset_ids: Mapping[str, str],
    project_root: Path | None = None,
    schedules: Iterable[object] = (),
    sensors: Iterable[object] = (),
) -> dict[str, Any]:
    """The deploy manifest for ``assets`` (definitions or @asset functions), assets sorted by key.

    Args:
        asset_ids: key -> AssetId (see :func:`assign_asset_ids`); every asset needs one.
        project_root: when given, ``code.filePath`` is relative to it (stable across machines).
        schedules: ``@schedule`` functions or ``ScheduleDefinition``s, listed sorted by id.

    Raises:
        ManifestValidationError: the graph is not deployable, an asset has no id, or a schedule
            targets an asset the manifest does not hold or whose partitions its rule does not fit.
    """
    definitions = [definition_of(a) for a in assets]
    validate_assets(definitions)
    if not definitions:
        raise ManifestValidationError("no assets to deploy")
    missing = sorted(str(d.key) for d in definitions if not asset_ids.get(str(d.key)))
    if missing:
        raise ManifestValidationError(f"no asset id for {', '.join(missing)}", details={"missing": missing})
    ordered = sorted({str(d.key): d for d in definitions}.items(), key=lambda kv: kv[0].encode("utf-8"))
    return {
        "manifestVersion": MANIFEST_VERSION,
        "tenantId": tenant_id,
        "workspaceId": workspace_id,
        "codeVersionId": code_version_id,
        "git": (git or GitInfo()).to_json(),
        "assets": [asset_manifest(d, asset_ids[k], project_root) for k, d in ordered],
        "schedules": schedule_manifest(schedules, definitions),
        **_sensors_field(sensors, definitions),
        "deployedAt": format_timestamp(deployed_at_ms),
        "deployedBy": deployed_by,
        "metadata": {},
    }


def schedule_manifest(schedules: Iterable[object], assets: Iterable[AssetDefinition]) -> list[dict[str, Any]]:
    """The manifest's ``schedules[]``, checked against the assets by deploy's own rules, sorted by id."""
    dims = {str(a.key): [d.to_manifest() for d in a.partitions] for a in assets}
    entries: list[dict[str, Any]] = []
    for definition in sorted((schedule_of(s) for s in schedules), key=lambda d: d.id):
        try:
            definition.spec.check_targets(dims)
        except InvalidSchedule as exc:
            where = f"{definition.code}: " if definition.code else ""
            raise ManifestValidationError(
                f"{where}schedule {definition.id!r}: {exc.message}",
                details={**exc.details, "schedule": definition.id},
            ) from None
        entries.append(definition.to_manifest())
    return entries


def _sensors_field(sensors: Iterable[object], assets: Iterable[AssetDefinition]) -> dict[str, Any]:
    """``{"sensors": [...]}`` checked as deploy checks them, or nothing (a sensor-less manifest's bytes
    and fingerprint stay as they were)."""
    dims = {str(a.key): [d.to_manifest() for d in a.partitions] for a in assets}
    entries: list[dict[str, Any]] = []
    for definition in sorted((sensor_of(s) for s in sensors), key=lambda d: d.id):
        try:
            definition.spec.check_targets(dims)
        except InvalidSchedule as exc:
            where = f"{definition.code}: " if definition.code else ""
            raise ManifestValidationError(
                f"{where}sensor {definition.id!r}: {exc.message}",
                details={**exc.details, "sensor": definition.id},
            ) from None
        entries.append(definition.to_manifest())
    return {"sensors": entries} if entries else {}


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The manifest as canonical JSON (sorted keys, no whitespace, no floats)."""
    return canonical_bytes(manifest)


def manifest_dependency_graph(manifest: Mapping[str, Any]) -> dict[str, list[str]]:
    """``asset key -> sorted upstream keys`` of a manifest, keys in ``ns.name`` form (unknown deps kept).

    Raises:
        ManifestValidationError: an asset or dependency without a valid key.
    """
    graph: dict[str, list[str]] = {}
    for i, asset in enumerate(manifest.get("assets") or []):
        key = _manifest_key(asset.get("key") if isinstance(asset, Mapping) else None, f"assets[{i}].key")
        deps = asset.get("dependencies") or []
        upstream = {
            _manifest_key(dep.get("upstreamKey") if isinstance(dep, Mapping) else None, f"{key} dependency")
            for dep in deps
        }
        graph[key] = sorted(upstream, key=lambda k: k.encode("utf-8"))
    return graph


def _manifest_key(raw: object, where: str) -> str:
    from servo.core.errors import InvalidAssetKey

    try:
        if isinstance(raw, Mapping):
            return str(AssetKey(raw.get("namespace"), raw.get("name")))  # type: ignore[arg-type]
        if isinstance(raw, str):
            return str(AssetKey.parse(raw))
    except InvalidAssetKey as exc:
        raise ManifestValidationError(f"{where}: {exc.message}") from None
    raise ManifestValidationError(f"{where}: missing or malformed asset key {raw!r}")
