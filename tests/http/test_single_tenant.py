"""One tenant per deployment (GCP): API Gateway authenticates callers, not tenants, so a deployment
that serves one tenant refuses a request naming another in X-Servo-Tenant instead of acting for it."""

from __future__ import annotations

from pathlib import Path

from servo.dev.embedded import router_app

from tests.support.context import make_context


def _client(tmp_path: Path, **settings: object):  # type: ignore[no-untyped-def]
    ctx, _, _ = make_context(tmp_path, default_tenant="acme", **settings)
    return router_app(lambda: ctx).test_client()


def test_a_single_tenant_deployment_refuses_another_tenant(tmp_path: Path) -> None:
    client = _client(tmp_path, single_tenant=True)
    refused = client.get("/v1/workspaces/prod/runs", headers={"X-Servo-Tenant": "globex"})
    assert refused.status_code == 400
    assert "acme" in refused.get_json()["message"]
    assert client.get("/v1/workspaces/prod/runs", headers={"X-Servo-Tenant": "acme"}).status_code == 200
    assert client.get("/v1/workspaces/prod/runs").status_code == 200


def test_a_multi_tenant_stack_still_takes_the_header(tmp_path: Path) -> None:
    client = _client(tmp_path)
    assert client.get("/v1/workspaces/prod/runs", headers={"X-Servo-Tenant": "globex"}).status_code == 200
