from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_FUNCTIONS = ("deploy", "trigger", "runs", "cancel", "callback", "compactor", "timers", "automation")


def function_folders() -> list[str]:
    return sorted(
        p.name for p in (ROOT / "functions").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )


def render_openapi(values: dict[str, str] | None = None) -> dict[str, Any]:
    """infra/openapi.yaml with its Terraform template variables substituted, as templatefile() would."""
    text = (ROOT / "infra" / "openapi.yaml").read_text()
    defaults = {"api_audience": "servo-api", "client_sa_email": "servo-api-client@p.iam.gserviceaccount.com"}
    supplied = {**defaults, **(values or {})}

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        return supplied.get(name, f"https://{name.replace('_', '-')}.example.run.app")

    doc: dict[str, Any] = yaml.safe_load(re.sub(r"\$\{(\w+)\}", sub, text))
    return doc


@pytest.fixture(scope="session")
def openapi() -> dict[str, Any]:
    return render_openapi()
