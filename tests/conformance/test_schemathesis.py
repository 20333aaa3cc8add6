"""infra/openapi.yaml tells the truth: schemathesis, an independent OpenAPI tester, against the local stack.

The embedded ``servo dev`` control plane serves on 127.0.0.1 with a recording sink as its worker. A
manifest is deployed and a run triggered first, so generated requests can reach real objects: the
callbacks carry a task token the test signs with the stack's secret, the timers carry the local
internal credential. Every operation runs every schemathesis phase that applies (examples, coverage,
fuzzing) with a fixed seed and a bounded number of cases, under these checks: no 5xx, status codes and
response bodies and headers as documented, schema-valid requests accepted and schema-invalid ones
rejected, and a 405 that names the allowed methods.

What Swagger 2.0 cannot state is written in the document as ``x-servo-*`` extensions and in
descriptions; ``_repair`` applies exactly those rules to the *positive* cases (the ones schemathesis
promises are valid), and nothing else: byte limits, fields that go together, and rules that depend on
what is deployed (asset keys that exist, cursors the server issued).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from schemathesis.config import SchemathesisConfig
from servo.dev.embedded import EmbeddedStack
from servo.tokens import issue_task_token

from tests.conformance.conftest import MAX_EXAMPLES, SEED, TALLY
from tests.functions.test_deploy_function import asset, manifest
from tests.support.http_sink import HttpSink

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "infra" / "openapi.yaml"
WS = "conformance"
ASSETS = ("ns.a", "ns.b", "ns.c")
GRAPH = manifest(asset("ns.a"), asset("ns.b", "ns.a"), asset("ns.c", "ns.b"))
POSITIVE_OK = ["2xx", "401", "403", "404", "409"]
# Backfills need partitioned assets: a workspace of its own, so the other operations' unpartitioned
# selections stay valid.
PARTS_WS = "conformance-parts"
DAY = {"name": "date", "kind": "time", "granularity": "day", "start": "2025-01-01"}
PARTS = manifest({**asset("p.d"), "partitioning": {"dimensions": [DAY]}})


@dataclass(frozen=True, slots=True)
class Target:
    stack: EmbeddedStack
    run_id: str
    task_id: str
    token: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with HttpSink() as worker:
        stack = EmbeddedStack(
            tmp_path_factory.mktemp("conformance"), worker_url=worker.url("/dispatch"), sweep_interval_s=0
        )
        with stack:
            api = stack.api_url
            deployed = requests.post(
                f"{api}/v1/workspaces/{WS}/manifests",
                json=GRAPH,
                timeout=10,
            )
            assert deployed.status_code == 201, deployed.text
            parts = requests.post(f"{api}/v1/workspaces/{PARTS_WS}/manifests", json=PARTS, timeout=10)
            assert parts.status_code == 201, parts.text
            run = requests.post(f"{api}/v1/workspaces/{WS}/runs", json={"selection": ["ns.a"]}, timeout=10)
            assert run.status_code == 201, run.text
            (delivery,) = worker.wait_for(1, "/dispatch")
            env = json.loads(delivery.body)
            assert stack.ctx is not None
            token, _ = issue_task_token(
                stack.ctx.settings.token_secret,
                task_id=env["taskId"],
                tenant_id=env["tenantId"],
                workspace_id=env["workspaceId"],
                run_id=env["runId"],
                attempt=env["attempt"],
                attempt_id=env["attemptId"],
                now_s=int(time.time()),
            )
            yield Target(stack, run.json()["runId"], env["taskId"], token)


# Loaded at import so pytest can parametrize by operation; the stack's URL and credentials are given
# per call, since the stack starts in a fixture.
schema = schemathesis.openapi.from_path(
    DOC,
    config=SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": "http://127.0.0.1:9",
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "mode": "all",
                "no-shrink": True,
                # Same seed, same cases: no replay of examples saved by an earlier run.
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {
                "enabled": True,  # every check schemathesis has
                # 410: the task became terminal (a generated cancel ended the run), a state and not a
                # rejection of the data; documented on heartbeat.
                "positive_data_acceptance": {"expected-statuses": [*POSITIVE_OK, "410"]},
            },
        }
    ),
)


def _credentials(case: Any, t: Target) -> dict[str, str]:
    """What the route's security scheme asks for (see x-servo-security in the document)."""
    assert t.stack.ctx is not None
    if "/tasks/{task_id}/" in case.operation.path:
        return {"Authorization": f"Bearer {t.token}"}
    if case.operation.path.startswith("/v1/timers/"):
        return {"X-Servo-Dispatch-Secret": t.stack.ctx.settings.dispatch_secret}
    return {}


def _walk(value: Any, fix: Any, key: str = "") -> Any:
    """``value`` with ``fix(key, leaf)`` applied to every leaf; a list's items take the list's key."""
    if isinstance(value, dict):
        return {k: _walk(v, fix, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, fix, key) for v in value]
    return fix(key, value)


def _extension(name: str) -> dict[str, Any]:
    """Property name → value of an ``x-servo-*`` keyword anywhere in the document's definitions."""
    found: dict[str, Any] = {}

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if name in node and isinstance(node.get("name"), str):
                found[node["name"]] = node[name]  # a parameter
            for key, value in node.get("properties", {}).items():
                if isinstance(value, dict) and name in value:
                    found[key] = value[name]
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(yaml.safe_load(DOC.read_text(encoding="utf-8")))
    return found


MAX_BYTES = _extension("x-servo-max-utf8-bytes")


def _fits(key: str, value: Any) -> Any:
    limit = MAX_BYTES.get(key)
    if isinstance(value, str) and limit is not None:
        return value.encode("utf-8")[:limit].decode("utf-8", "ignore")
    return value


def _json_body_rules() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(DOC.read_text(encoding="utf-8"))["x-servo-json-body"]
    return rules


JSON_BODY = _json_body_rules()
# Body fields that come together or not at all (a definition's x-servo-together).
TOGETHER = [
    d["x-servo-together"]
    for d in yaml.safe_load(DOC.read_text(encoding="utf-8"))["definitions"].values()
    if "x-servo-together" in d
]


def _together(body: dict[str, Any]) -> dict[str, Any]:
    for group in TOGETHER:
        if not all(f in body for f in group):
            body = {k: v for k, v in body.items() if k not in group}
    return body


def _clamp(value: int) -> int:
    return min(max(value, JSON_BODY["integerMinimum"]), JSON_BODY["integerMaximum"])


def _valid_text(text: str) -> str:
    # x-servo-json-body: no lone surrogates (they have no UTF-8 form).
    return text.encode("utf-8", "replace").decode("utf-8")


def _strict(value: Any) -> Any:
    """``value`` within the document's rules for every JSON body (x-servo-json-body)."""
    if isinstance(value, dict):
        return {_valid_text(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    if isinstance(value, str):
        return _valid_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _clamp(value)
    return value


def _canonical(key: str, value: Any) -> Any:
    # A manifest is canonical JSON: integers only (the document's description).
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return _clamp(int(value))


_ASSET_OPS = ("listAssets", "getAsset", "listAssetPartitions")


def _repair(case: Any, t: Target) -> None:
    """Apply to a positive case the rules the document states in words and extensions."""
    op = case.operation.definition.raw.get("operationId")
    body = case.body if isinstance(case.body, dict) else None
    if case.headers:
        case.headers = {k: _fits(k, v) for k, v in case.headers.items()}
    if body is not None:
        body = _together(_walk(_strict(body), _fits))
    if op == "deployManifest" and body is not None:
        body = _walk(body, _canonical)
        seen: list[dict[str, Any]] = []
        for asset in body["assets"]:
            if all(asset["key"] != s["key"] for s in seen):
                seen.append(asset)
        for i, asset in enumerate(seen):
            # Dependencies must name an earlier asset of the same manifest: no unknown key, no cycle.
            deps = asset.get("dependencies")
            if isinstance(deps, list):
                asset["dependencies"] = [{**d, "upstreamKey": seen[0]["key"]} for d in deps] if i else []
                if deps and i and "partitioning" in seen[0]:
                    # Both ends partitioned alike, or this end not partitioned (the description).
                    asset["partitioning"] = seen[0]["partitioning"]
        body["assets"] = seen
        # A schedule's cron, zone and targets are rules in words (its description): none is generated.
        body["schedules"] = []
        body["sensors"] = []
    if op == "triggerRun" and body is not None:
        case.path_parameters["ws"] = WS
        case.headers = {k: v for k, v in (case.headers or {}).items() if k != "X-Servo-Tenant"}
        key = (case.headers or {}).get("Idempotency-Key")
        if "runKey" not in body and key is not None and not 0 < len(key.encode()) <= 256:
            del case.headers["Idempotency-Key"]  # then it is the runKey, with runKey's limits
        body["selection"] = [ASSETS[i % len(ASSETS)] for i in range(len(body["selection"]))]
        body.pop("partitionKey", None)  # the deployed assets are unpartitioned
        body.pop("partitions", None)
        labels = body.get("labels") or {}
        body["labels"] = {
            k: v for k, v in labels.items() if 0 < len(k) <= 128 and not k.startswith(("servo.", "arco."))
        }
    if op in ("createBackfill", "retryFailedBackfill"):
        # The descriptions: an Idempotency-Key or a clientRequestId is required, maxConcurrentRuns is
        # at least chunkSize; and create's assets and keys must be deployed (a partitioned workspace).
        case.headers = {k: v for k, v in (case.headers or {}).items() if k != "X-Servo-Tenant"}
        if "Idempotency-Key" not in case.headers and "clientRequestId" not in (body or {}):
            case.headers["Idempotency-Key"] = "conformance"
    most, size = (body or {}).get("maxConcurrentRuns", 100), (body or {}).get("chunkSize", 1)
    if op in ("createBackfill", "retryFailedBackfill") and body is not None and most < size:
        body["maxConcurrentRuns"] = size
    if op == "createBackfill" and body is not None:
        case.path_parameters["ws"] = PARTS_WS
        body["assets"] = ["p.d"]
        if "range" in body["partitions"]:
            body["partitions"] = {"range": {"start": "2025-01-01", "end": "2025-01-03"}}
        else:
            body["partitions"] = {"explicit": ["date=d:2025-01-01"]}
        labels = body.get("labels") or {}
        body["labels"] = {
            k: v for k, v in labels.items() if 0 < len(k) <= 128 and not k.startswith(("servo.", "arco."))
        }
    if op == "rerunRun" and body is not None:
        case.headers = {k: v for k, v in (case.headers or {}).items() if k != "X-Servo-Tenant"}
        # The description: fromFailure takes no selection or include flags; subset selects in the plan.
        if body.get("mode") == "fromFailure":
            for name in ("selection", "includeUpstream", "includeDownstream"):
                body.pop(name, None)
        else:
            body["selection"] = ["ns.a"]
        labels = body.get("labels") or {}
        body["labels"] = {
            k: v for k, v in labels.items() if 0 < len(k) <= 128 and not k.startswith(("servo.", "arco."))
        }
    if (
        op
        in (
            "listRuns",
            "getRunLogs",
            "listScheduleTicks",
            "listSensorEvaluations",
            "listBackfills",
            "listBackfillChunks",
            *_ASSET_OPS,
        )
        and case.query
    ):
        case.query.pop("cursor", None)  # only a cursor the server issued is valid
    asset_key = case.path_parameters.get("asset_key") if case.path_parameters else None
    if isinstance(asset_key, str) and len(asset_key) % 2 == 0:
        # Half the valid keys become a deployed asset, so its documented 200 bodies are checked too.
        case.path_parameters.update(ws=WS, asset_key=ASSETS[0])
    run_id = case.path_parameters.get("run_id") if case.path_parameters else None
    if isinstance(run_id, str) and len(run_id) % 2 == 0:
        # Half the valid run ids become the real run, so its documented 200 bodies are checked too.
        case.path_parameters.update(ws=WS, run_id=t.run_id)
    if body is not None:
        case.body = body


CASES: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _count_cases() -> Iterator[None]:
    """Cases per operation, into the session summary that prints them with the seed (a module
    fixture: Hypothesis refuses function-scoped ones, and under xdist each worker counts its own)."""
    yield
    for label in sorted(CASES):
        TALLY.add(CASES[label])


@schema.parametrize()
def test_the_api_answers_as_its_document_says(case: Any, target: Target) -> None:
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive:
        _repair(case, target)
    if "task_id" in (case.path_parameters or {}):
        case.path_parameters["task_id"] = target.task_id  # the token is for this task only
    CASES[case.operation.label] = CASES.get(case.operation.label, 0) + 1
    case.call_and_validate(base_url=target.stack.api_url, headers=_credentials(case, target))
