"""An asset's attempt timeout may be anything the SDK accepts (up to 7 days): its task is dispatched
with a token that outlives the attempt, never left READY because the token could not be signed."""

from __future__ import annotations

import json
from pathlib import Path

from servo.sdk._asset import MAX_TIMEOUT_SECONDS
from servo.services.manifests import deploy_manifest
from servo.services.trigger import trigger_run
from servo.tokens import TTL_SLACK_S, verify_task_token

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import make_context

WS = "prod"


def test_a_seven_day_timeout_is_dispatched_with_a_token_covering_it(tmp_path: Path) -> None:
    ctx, clock, queue = make_context(tmp_path)
    body = manifest(asset("ns.long", maxRetries=0, timeoutSeconds=MAX_TIMEOUT_SECONDS))
    assert deploy_manifest(ctx, "default", WS, json.dumps(body).encode(), None)[0] == 201
    assert trigger_run(ctx, "default", WS, {"selection": ["ns.long"]})[0] == 201
    (task,) = queue.take()
    envelope = json.loads(task.body)
    now_s = clock() // 1000
    claims = verify_task_token(ctx.settings.token_secret, envelope["taskToken"], now_s=now_s)
    assert claims.exp >= now_s + MAX_TIMEOUT_SECONDS + TTL_SLACK_S
