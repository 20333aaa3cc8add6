"""Where the CLI talks to: flags > environment > ``servo.toml`` > defaults.

The project directory is the nearest folder (from the working directory up) holding a
``servo.toml``, like git finds its repository; ``--project`` names it explicitly.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servo.cli._errors import CliError

CONFIG_FILE = "servo.toml"
DEFAULT_API_URL = "http://127.0.0.1:8080"
DEFAULT_WORKSPACE = "default"
DEFAULT_TENANT = "default"

# (config field, environment variable, key in the [api] table of servo.toml, default)
_FIELDS: tuple[tuple[str, str, str, str | None], ...] = (
    ("api_url", "SERVO_API_URL", "url", DEFAULT_API_URL),
    ("workspace", "SERVO_WORKSPACE", "workspace", DEFAULT_WORKSPACE),
    ("tenant", "SERVO_TENANT", "tenant", DEFAULT_TENANT),
    ("token", "SERVO_TOKEN", "token", None),
)


@dataclass(frozen=True, slots=True)
class Config:
    """The resolved settings of one CLI invocation, and where each came from."""

    api_url: str
    workspace: str
    tenant: str
    token: str | None
    project_dir: Path
    config_file: Path | None
    sources: Mapping[str, str]

    @property
    def has_project(self) -> bool:
        return self.config_file is not None or (self.project_dir / "assets").is_dir()

    def require_project(self) -> Path:
        """The project directory, or a ``missing config`` error naming where we looked."""
        if not self.has_project:
            raise CliError(
                f"missing config: no {CONFIG_FILE} in {self.project_dir} or its parents",
                hint="run `servo init NAME` to create a project, or pass --project DIR",
            )
        return self.project_dir


def find_project_dir(start: Path) -> tuple[Path, Path | None]:
    """The nearest directory from ``start`` upwards that holds servo.toml (else ``start`` itself)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return folder, candidate
    return start, None


def read_config_file(path: Path) -> dict[str, Any]:
    """The parsed servo.toml; a syntax or type error is one clear line."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"invalid {path}: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    for table in ("api", "dev", "project"):
        if table in data and not isinstance(data[table], dict):
            raise CliError(f"invalid {path}: [{table}] must be a table")
    return data


def resolve_config(
    flags: Mapping[str, str | None],
    env: Mapping[str, str] | None = None,
    project: Path | None = None,
    cwd: Path | None = None,
) -> Config:
    """Merge flags, environment, servo.toml and defaults (first non-empty value wins)."""
    environ = os.environ if env is None else env
    if project is not None:
        project_dir = project.resolve()
        candidate = project_dir / CONFIG_FILE
        config_file = candidate if candidate.is_file() else None
        if not project_dir.is_dir():
            raise CliError(f"project directory {project_dir} does not exist")
    else:
        project_dir, config_file = find_project_dir(cwd or Path.cwd())
    api_table: Mapping[str, Any] = {}
    if config_file is not None:
        api_table = read_config_file(config_file).get("api", {})
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for name, env_var, toml_key, default in _FIELDS:
        flag = flags.get(name)
        toml_value = api_table.get(toml_key)
        if toml_value is not None and not isinstance(toml_value, str):
            raise CliError(f"invalid {config_file}: api.{toml_key} must be a string")
        for source, value in (
            ("flag", flag),
            (f"env {env_var}", environ.get(env_var)),
            (f"{CONFIG_FILE} api.{toml_key}", toml_value),
            ("default", default),
        ):
            if value:
                values[name], sources[name] = value, source
                break
        else:
            values[name] = None
    api_url = str(values["api_url"]).rstrip("/")
    if not api_url.startswith(("http://", "https://")):
        raise CliError(
            f"invalid API URL {api_url!r} (from {sources['api_url']}): expected http(s)://host:port"
        )
    return Config(
        api_url=api_url,
        workspace=str(values["workspace"]),
        tenant=str(values["tenant"]),
        token=values["token"],
        project_dir=project_dir,
        config_file=config_file,
        sources=sources,
    )
