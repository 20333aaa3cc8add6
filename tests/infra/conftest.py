from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.infra import _refs, _tf, _tfrun

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_FUNCTIONS = ("deploy", "trigger", "runs", "cancel", "callback", "compactor", "timers", "automation")


def function_folders() -> list[str]:
    return sorted(
        p.name for p in (ROOT / "functions").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )


OPENAPI_MODULE = ROOT / "infra" / "modules" / "openapi-document"
CORE = ROOT / "infra" / "modules" / "servo-core"
# The two values of servo-core's locals only a provider knows, given to evaluate the rest offline.
PROJECT_NUMBER = "123456789012"
GIVEN = {"project_number": PROJECT_NUMBER, "object_prefix": "projects/_/buckets/b/objects"}


@pytest.fixture(scope="session")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build/functions/manifest.json naming every function."""
    path = tmp_path_factory.mktemp("build") / "manifest.json"
    entries = {
        fn: {"entry_point": fn, "sha256": f"{i:064x}", "zip": f"{fn}.zip"}
        for i, fn in enumerate(EXPECTED_FUNCTIONS)
    }
    path.write_text(json.dumps(entries))
    return path


def core_variables(manifest: Path, **overrides: Any) -> dict[str, Any]:
    """servo-core's required variables (and ``overrides``)."""
    required = {
        "project_id": "p",
        "bucket_name": "b",
        "sources_bucket_name": "b-sources",
        "functions_manifest_path": str(manifest),
        "worker_url": "https://servo-worker-123456789012.us-central1.run.app/dispatch",
    }
    return {**required, **overrides}


def openapi_template_vars() -> dict[str, str]:
    """A value for every template variable servo-core hands the openapi-document module."""
    supplied = _tf.blocks(CORE, "module")["openapi"]["template_vars"]
    fixed = {"api_audience": "servo-api", "client_sa_email": "servo-api-client@p.iam.gserviceaccount.com"}
    return {name: fixed.get(name, f"https://{name.replace('_', '-')}.example.run.app") for name in supplied}


def render_openapi(
    template_vars: dict[str, str], openapi_path: Path = ROOT / "infra" / "openapi.yaml"
) -> dict[str, Any]:
    """The API document as the real Terraform renders it through modules/openapi-document: the whole
    document (``document``) and what API Gateway receives (``public``)."""
    config = f"""
module "doc" {{
  source        = {_tfrun.hcl_string(str(OPENAPI_MODULE))}
  openapi_path  = {_tfrun.hcl_string(str(openapi_path))}
  template_vars = var.template_vars
}}
variable "template_vars" {{
  type = map(string)
}}
output "document" {{
  value = module.doc.document
}}
output "public" {{
  value = module.doc.public
}}
output "public_json" {{
  value = module.doc.public_json
}}
"""
    return _tfrun.outputs(config, {"template_vars": template_vars})


@pytest.fixture(scope="session")
def rendered_openapi() -> dict[str, Any]:
    return render_openapi(openapi_template_vars())


@pytest.fixture(scope="session")
def openapi(rendered_openapi: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = rendered_openapi["document"]
    return document


@pytest.fixture
def planted_infra(tmp_path: Path) -> Callable[[str, str, str], Path]:
    """A copy of infra/ in which ``plant(file, old, new)`` changes one place; returns the file's path."""
    copy = tmp_path / "infra"
    shutil.copytree(ROOT / "infra", copy)

    def plant(relative: str, old: str, new: str) -> Path:
        path = copy / relative
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))
        return path

    return plant


@pytest.fixture(scope="session")
def core_locals(manifest: Path) -> dict[str, Any]:
    """servo-core's provider-free locals, evaluated by the real Terraform."""
    return _refs.evaluate_locals(CORE, core_variables(manifest), GIVEN)
