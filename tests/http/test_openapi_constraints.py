"""The constraints infra/openapi.yaml states are the parsers' own: one source, compared here.

Each limit, pattern, enum and required list the document gives a parameter or body field is checked
against the constant or wire table the server's parser uses, so changing one without the other fails.
(schemathesis in tests/conformance then checks the document against the running server.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core import ids, protocol
from servo.core._key_text import IDENT
from servo.core.keys import MAX_ASSET_KEY_BYTES, MAX_SELECTION_ITEMS
from servo.core.timefmt import _RFC3339_UTC
from servo.services import cancel, manifests
from servo.services import trigger_request as trigger
from servo.store import local

ROOT = Path(__file__).resolve().parents[2]
DOC: dict[str, Any] = yaml.safe_load((ROOT / "infra" / "openapi.yaml").read_text(encoding="utf-8"))
DEFS = DOC["definitions"]
PARAMS = DOC["parameters"]
I64_MAX = 2**63 - 1


def _props(name: str) -> dict[str, Any]:
    props: dict[str, Any] = DEFS[name]["properties"]
    return props


def test_workspace_and_tenant_ids_are_validate_scope_id() -> None:
    scope = f"^{ids._SCOPE_RE.pattern}$"
    assert (PARAMS["ws"]["pattern"], PARAMS["ws"]["maxLength"]) == (scope, ids.MAX_SCOPE_LEN)
    # An empty tenant header means the default tenant, hence `*` where the workspace has `+`.
    tenant = PARAMS["tenant"]
    assert (tenant["pattern"], tenant["maxLength"]) == (scope.replace("+", "*"), ids.MAX_SCOPE_LEN)
    for body in ("SweepRequest", "FireTimerRequest"):
        for field in ("tenantId", "workspaceId"):
            assert (_props(body)[field]["pattern"], _props(body)[field]["maxLength"]) == (
                scope,
                ids.MAX_SCOPE_LEN,
            )
    assert DEFS["SweepRequest"]["x-servo-together"] == ["tenantId", "workspaceId"]


def test_asset_keys_are_the_asset_key_grammar() -> None:
    key = _props("AssetKey")
    assert key["namespace"]["pattern"] == f"^{IDENT}$"
    assert key["name"]["pattern"] == rf"^{IDENT}(\.{IDENT})*$"
    # Both at their maximum still make a key of at most MAX_ASSET_KEY_BYTES (ASCII, plus the dot).
    assert key["namespace"]["maxLength"] + 1 + key["name"]["maxLength"] == MAX_ASSET_KEY_BYTES
    selection = _props("TriggerRunRequest")["selection"]
    assert selection["maxItems"] == MAX_SELECTION_ITEMS
    assert selection["items"]["maxLength"] == MAX_ASSET_KEY_BYTES
    assert selection["items"]["pattern"] == rf"^{IDENT}[./]{IDENT}(\.{IDENT})*$"


def test_trigger_limits_are_the_trigger_parsers() -> None:
    body = _props("TriggerRunRequest")
    assert (
        body["runKey"]["maxLength"] == body["runKey"]["x-servo-max-utf8-bytes"] == trigger.MAX_RUN_KEY_BYTES
    )
    assert body["partitionKey"]["maxLength"] == trigger.MAX_PARTITION_KEY_BYTES
    assert body["partitions"]["maxItems"] == trigger.MAX_LEGACY_PARTITIONS
    assert body["labels"]["maxProperties"] == trigger.MAX_LABELS
    assert body["labels"]["additionalProperties"]["maxLength"] == trigger.MAX_LABEL_VALUE
    assert f"1..{trigger.MAX_LABEL_KEY} characters" in body["labels"]["description"]
    for prefix in trigger.RESERVED_LABEL_PREFIXES:
        assert f"`{prefix}`" in body["labels"]["description"]


def test_cancel_reason_and_deploy_key_limits() -> None:
    assert _props("CancelRunRequest")["reason"]["maxLength"] == cancel.MAX_REASON
    # The deploy key names an object by its base64url form, so the store's segment limit bounds it.
    encoded = local._MAX_SEGMENT_BYTES - len(".json")
    bound = min(manifests.MAX_IDEMPOTENCY_KEY_BYTES, encoded * 3 // 4)
    key = PARAMS["idempotency_key"]
    assert key["maxLength"] == key["x-servo-max-utf8-bytes"] == bound


CALLBACK_BODIES = {
    "TaskStartedRequest": protocol.StartedRequest,
    "TaskHeartbeatRequest": protocol.HeartbeatRequest,
    "TaskCompletedRequest": protocol.CompletedRequest,
    "TaskOutput": protocol.TaskOutput,
    "TaskErrorBody": protocol.TaskError,
}


@pytest.mark.parametrize("name", sorted(CALLBACK_BODIES))
def test_callback_bodies_are_the_protocol_wire_tables(name: str) -> None:
    model = CALLBACK_BODIES[name]
    doc, props = DEFS[name], _props(name)
    assert set(doc.get("required", [])) == {f.wire for f in model._WIRE if f.required}
    for f in model._WIRE:
        if f.wire not in props:
            assert f.kind == "object", (name, f.wire)  # free-form extras (metadata) stay undocumented
            continue
        spec = props[f.wire]
        assert spec.get("x-nullable", False) is not f.required, (name, f.wire)  # null reads as absent
        if f.kind == "id":
            assert (spec["type"], spec["minLength"]) == ("string", 1), (name, f.wire)
        elif f.kind == "int":
            # attempt 0 is refused before the table is read (contracts §10: 400 invalid_argument).
            low = max(f.lo, 1) if f.wire == "attempt" else f.lo
            assert (spec["minimum"], spec.get("maximum", I64_MAX)) == (low, f.hi), (name, f.wire)
        elif f.kind == "enum":
            assert sorted(spec["enum"]) == sorted(f.allowed), (name, f.wire)
        elif f.kind == "time":
            assert spec["pattern"] == f"^{_RFC3339_UTC.pattern}$", (name, f.wire)


def test_callback_error_codes_are_the_ones_the_server_sends() -> None:
    text = (ROOT / "shared" / "servo" / "services" / "callbacks.py").read_text(encoding="utf-8")
    sent = set(re.findall(r'CallbackRejected\(\s*\w+,\s*"([a-z_]+)"', text))
    sent |= set(re.findall(r'error = "([a-z_]+)" if \w+ == 409 else "([a-z_]+)"', text)[0])
    assert {"invalid_argument", "attempt_mismatch", "task_expired"} <= sent  # the scan finds them
    assert sent <= set(_props("CallbackError")["error"]["enum"])


TIMER_ID = _props("FireTimerRequest")["timerId"]["pattern"]


@settings(max_examples=200, deadline=None)
@given(st.from_regex(TIMER_ID, fullmatch=True))
def test_every_timer_id_the_document_allows_parses(timer_id: str) -> None:
    ids.parse_timer_id(timer_id)


@pytest.mark.parametrize(
    "timer_id",
    [
        "timer:retry:r:t:0:5",
        "timer:retry:r:t:1:05",
        "timer:cron:a:b:1",
        "timer:nope:r:t:1:5",
        "timer:cron:\x85:1",
    ],
)
def test_timer_ids_the_parser_refuses_are_outside_the_document(timer_id: str) -> None:
    assert re.fullmatch(TIMER_ID, timer_id) is None
    with pytest.raises(ids.InvalidId):
        ids.parse_timer_id(timer_id)


def _subclasses(cls: type) -> list[type]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in _subclasses(direct))]


def test_every_error_code_the_server_has_is_in_the_error_schema() -> None:
    import importlib

    from servo.core.errors import ServoError

    # Every module defining an error a request can end in, so the scan sees them however tests ran.
    for module in ("servo.dispatch", "servo.http.responses", "servo.services.callbacks"):
        importlib.import_module(module)

    codes = {cls.code for cls in _subclasses(ServoError)} | {"METHOD_NOT_ALLOWED"}
    assert codes <= set(_props("Error")["code"]["enum"])


def test_the_json_body_rules_are_the_strict_parsers() -> None:
    from servo.core import canonical_json
    from servo.http.app import MAX_REQUEST_BYTES, parse_json_object

    rules = DOC["x-servo-json-body"]
    assert (rules["integerMinimum"], rules["integerMaximum"]) == (
        canonical_json.INT_MIN,
        canonical_json.INT_MAX,
    )
    assert rules["maxBytes"] == MAX_REQUEST_BYTES
    assert parse_json_object(b'{"n": %d}' % canonical_json.INT_MAX) == {"n": canonical_json.INT_MAX}
    refused = [
        b'{"n": %d}' % (canonical_json.INT_MAX + 1),
        b'{"n": %d}' % (canonical_json.INT_MIN - 1),
        b'{"s": "\\ud800"}',
        b'{"a": 1, "a": 2}',
    ]
    assert (rules["loneSurrogates"], rules["duplicateKeys"]) == (False, False)
    for body in refused:
        with pytest.raises(Exception, match="JSON"):
            parse_json_object(body)


def test_log_chunk_fields_are_the_logs_parsers() -> None:
    from servo.services import callbacks

    body = _props("TaskLogsRequest")
    assert (body["seq"]["type"], body["seq"]["minimum"], body["seq"]["maximum"]) == (
        "integer",
        0,
        callbacks.MAX_LOG_SEQ,
    )
    text = body["text"]
    assert (text["type"], text["maxLength"], text["x-servo-max-utf8-bytes"]) == (
        "string",
        callbacks.MAX_LOG_CHUNK_BYTES,
        callbacks.MAX_LOG_CHUNK_BYTES,
    )
    # The whole-attempt form is still accepted: both shapes are in the one schema, told apart by seq.
    assert {"stdout", "stderr"} <= set(body)
    assert DEFS["TaskLogsRequest"]["x-servo-together"] == ["seq", "text"]
    assert f"last {callbacks.MAX_LOG_BYTES // 2**20} MiB" in DEFS["TaskLogsRequest"]["description"]


def test_run_trigger_is_the_ledgers_trigger_types() -> None:
    from servo.core.events import TRIGGER_TYPES

    for name in ("Run", "RunSummary"):
        assert _props(name)["trigger"] == {"$ref": "#/definitions/RunTrigger"}, name
    assert set(_props("RunTrigger")["type"]["enum"]) == TRIGGER_TYPES


def _dict_keys(function: Any, *, returned: bool = False) -> set[str]:
    """The string keys of every dict literal in ``function``'s source (or only in what it returns):
    the fields it can answer."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    roots = [n.value for n in ast.walk(tree) if isinstance(n, ast.Return) and n.value] if returned else [tree]
    return {
        key.value
        for root in roots
        for node in ast.walk(root)
        if isinstance(node, ast.Dict)
        for key in node.keys
        if isinstance(key, ast.Constant) and isinstance(key.value, str)
    }


def test_every_field_the_run_views_send_is_documented() -> None:
    from servo.services import runs

    task = set(_props("Task"))
    attributions = set(_props("Task")["retryAttribution"]["properties"]) | set(
        _props("Task")["skipAttribution"]["properties"]
    )
    assert _dict_keys(runs.task_view) <= task | attributions
    assert _dict_keys(runs._progress) <= task
    assert _dict_keys(runs._skip_attribution) <= set(_props("Task")["skipAttribution"]["properties"])
    assert _dict_keys(runs.get_run) <= set(_props("Run"))
    assert _dict_keys(runs.list_runs) <= set(_props("RunSummary")) | set(_props("ListRunsResponse"))


def test_every_field_a_callback_rejection_carries_is_documented() -> None:
    import ast

    sources = sorted((ROOT / "shared" / "servo").rglob("*.py"))
    fields = {
        kw.arg
        for source in sources
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "CallbackRejected"
        for kw in node.keywords
        if kw.arg is not None
    }
    assert "state" in fields  # the scan finds them
    assert fields <= set(_props("CallbackError"))


# Shared with the deploy request (a manifest is answered as it was deployed), whose parser ignores
# fields it does not know: closing them would make schemathesis expect a 400 the server never sends.
REQUEST_SHAPES = {"Manifest", "ManifestAsset", "AssetKey"}
# Open on purpose: a run's source ids, as many as its source type carries (each a string).
OPEN_MAPS = {"RunTrigger"}


def _response_definitions() -> set[str]:
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/definitions/") and ref.split("/")[-1] not in found:
                found.add(ref.split("/")[-1])
                visit(DEFS[ref.split("/")[-1]])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(DOC["responses"])
    visit([op.get("responses", {}) for path in DOC["paths"].values() for op in path.values()])
    return found


def _closed(schema: dict[str, Any], where: str) -> None:
    if schema.get("type") != "object":
        return
    props = schema.get("properties")
    if props is not None:
        assert schema.get("additionalProperties") is False, where
        for name, inner in props.items():
            _closed(inner, f"{where}.{name}")
    elif isinstance(schema.get("additionalProperties"), dict):
        _closed(schema["additionalProperties"], f"{where}.*")


def test_every_response_schema_names_all_its_fields() -> None:
    # So schemathesis's response-schema check fails on a field the server sends undeclared.
    names = _response_definitions() - REQUEST_SHAPES - OPEN_MAPS
    assert {"Run", "Task", "RunSummary", "Error", "CallbackError", "LogsAck"} <= names
    for name in sorted(names):
        _closed(DEFS[name], name)


def test_every_field_the_sweep_sends_is_documented() -> None:
    from servo.services import timers

    sweep = _props("SweepResponse")
    assert _dict_keys(timers.sweep) <= set(sweep)
    per_workspace = sweep["workspaces"]["additionalProperties"]["properties"]
    assert _dict_keys(timers.sweep_workspace) <= set(per_workspace)
    assert _dict_keys(timers._skip) <= set(sweep["skipped"]["items"]["properties"])


def _answers() -> list[tuple[Any, str]]:
    from servo.services import callbacks, cancel, manifests, timers, trigger

    return [
        (manifests.get_current_manifest, "CurrentManifest"),
        (trigger.trigger_run, "TriggerRunResponse"),
        (cancel._answer, "CancelRunResponse"),
        (callbacks.task_started, "Ack"),
        (callbacks.task_heartbeat, "HeartbeatAck"),
        (callbacks.task_completed, "CompletedAck"),
        (callbacks.upload_logs, "LogsAck"),
        (timers.fire_timer, "FireTimerResponse"),
    ]


@pytest.mark.parametrize("index", range(len(_answers())))
def test_every_field_an_answer_sends_is_documented(index: int) -> None:
    function, name = _answers()[index]
    assert _dict_keys(function, returned=True) <= set(_props(name)), name
