"""The push route through the HTTP edge (automation §6.2, P9): the push account's OIDC principal, the
tenant named in the subscription's URL, and the Pub/Sub envelope answered RECORDED then DUPLICATE."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from servo.core.canonical_json import canonical_bytes
from servo.dev.embedded import router_app
from servo.services.manifests import deploy_manifest

from tests.services.sensor_support import manifest, push
from tests.support.context import make_context

PUSH_ACCOUNT = "servo-push@p.iam.gserviceaccount.com"
ENVELOPE = {"message": {"messageId": "m1", "data": "aGk="}, "subscription": "projects/p/subscriptions/s"}


def _oidc(email: str) -> dict[str, str]:
    claims = base64.urlsafe_b64encode(json.dumps({"email": email}).encode()).decode().rstrip("=")
    return {"Authorization": f"Bearer e30.{claims}.c2ln"}


def test_only_the_push_account_may_push_and_the_tenant_comes_from_the_url(tmp_path: Path) -> None:
    ctx, _, _ = make_context(tmp_path, push_service_account=PUSH_ACCOUNT)
    deploy_manifest(ctx, "acme", "prod", canonical_bytes(manifest(push(defaultEnabled=True))), None)
    client = router_app(lambda: ctx).test_client()
    url = "/v1/workspaces/prod/sensors/inbox/push?tenant=acme"
    assert client.post(url, json=ENVELOPE).status_code == 401
    assert (
        client.post(url, json=ENVELOPE, headers=_oidc("gateway@p.iam.gserviceaccount.com")).status_code == 401
    )
    first = client.post(url, json=ENVELOPE, headers=_oidc(PUSH_ACCOUNT))
    assert first.status_code == 200 and first.get_json() == {"messageId": "m1", "status": "RECORDED"}
    again = client.post(url, json=ENVELOPE, headers=_oidc(PUSH_ACCOUNT))
    assert again.get_json()["status"] == "DUPLICATE"
    other_tenant = client.post(url.replace("acme", "other"), json=ENVELOPE, headers=_oidc(PUSH_ACCOUNT))
    assert other_tenant.status_code == 404
    bad = client.post(url, json={"message": {"data": "aGk="}}, headers=_oidc(PUSH_ACCOUNT))
    assert bad.status_code == 400 and "messageId" in bad.get_json()["message"]
