from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.infra import _tf, _tfrun

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_FUNCTIONS = ("deploy", "trigger", "runs", "cancel", "callback", "compactor", "timers")


def function_folders() -> list[str]:
    return sorted(
        p.name for p in (ROOT / "functions").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )


OPENAPI_MODULE = ROOT / "infra" / "modules" / "openapi-document"


def openapi_template_vars() -> dict[str, str]:
    """A value for every template variable servo-core hands the openapi-document module."""
    supplied = _tf.blocks(ROOT / "infra" / "modules" / "servo-core", "module")["openapi"]["template_vars"]
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
