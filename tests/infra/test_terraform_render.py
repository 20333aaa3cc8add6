"""The real Terraform renders what the deployment uploads: the API document through the same
provider-free module servo-core uses (templatefile + yamldecode + the internal-route filter)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra import _tfrun
from tests.infra.conftest import ROOT, openapi_template_vars, render_openapi

INTERNAL = {"/v1/timers/sweep", "/v1/timers/fire", "/v1/workspaces/{ws}/sensors/{sensor_id}/push"}


def test_terraform_renders_the_api_document(rendered_openapi: dict[str, Any]) -> None:
    doc = rendered_openapi["document"]
    assert doc["swagger"] == "2.0"
    assert set(doc["paths"]) >= INTERNAL
    scheme = doc["securityDefinitions"]["google_id_token"]
    assert scheme["x-google-audiences"] == "servo-api"
    assert scheme["x-google-issuer"] == "servo-api-client@p.iam.gserviceaccount.com"


def test_the_gateway_document_is_the_document_without_internal_routes(
    rendered_openapi: dict[str, Any],
) -> None:
    public = rendered_openapi["public"]
    assert not INTERNAL & set(public["paths"])
    assert set(public["paths"]) == set(rendered_openapi["document"]["paths"]) - INTERNAL
    assert not any(op.get("x-servo-internal") for ops in public["paths"].values() for op in ops.values())
    # What api_config uploads is this JSON, base64-encoded.
    assert json.loads(base64.b64decode(base64.b64encode(rendered_openapi["public_json"].encode()))) == public


def test_every_backend_is_a_url_terraform_supplied(rendered_openapi: dict[str, Any]) -> None:
    supplied = openapi_template_vars()
    for path, ops in rendered_openapi["document"]["paths"].items():
        for method, op in ops.items():
            if isinstance(op, dict) and "x-google-backend" in op:
                fn = op["x-servo-function"]
                assert op["x-google-backend"]["address"] == supplied[f"{fn}_url"], (path, method)


def test_a_template_expression_in_a_comment_fails_the_render(tmp_path: Path) -> None:
    # templatefile() parses ${...} everywhere, YAML comments included: the reason openapi.yaml escapes it.
    broken = tmp_path / "openapi.yaml"
    text = (ROOT / "infra" / "openapi.yaml").read_text()
    broken.write_text("# every ${...} below is a template variable\n" + text)
    with pytest.raises(_tfrun.TerraformError, match="Invalid"):
        render_openapi(openapi_template_vars(), broken)


def test_a_template_variable_terraform_does_not_supply_fails_the_render() -> None:
    supplied = openapi_template_vars()
    del supplied["runs_url"]
    with pytest.raises(_tfrun.TerraformError, match="runs_url"):
        render_openapi(supplied)
