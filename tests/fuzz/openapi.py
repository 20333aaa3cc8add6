"""Hypothesis strategies read from infra/openapi.yaml: the operations, their parameters and bodies.

Bodies are "valid-ish": built from the request schema (with known-good values mixed in for the
fields that gate deeper code, such as a real attemptId), or the same with any leaf swapped for
arbitrary JSON, or any JSON at all, or raw bytes. Path parameters mix real ids with hostile
strings: ``..``, ``/``, percent-escapes, control characters, unicode and very long values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
DOC: dict[str, Any] = yaml.safe_load((ROOT / "infra" / "openapi.yaml").read_text(encoding="utf-8"))
DEFINITIONS: dict[str, Any] = DOC["definitions"]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    template: str
    operation_id: str
    path_params: tuple[str, ...]
    query: Mapping[str, dict[str, Any]]
    body: dict[str, Any] | None
    internal: bool = False  # x-servo-auth internal: Scheduler / Cloud Tasks with the internal credential

    @property
    def callback(self) -> bool:
        return "/tasks/{task_id}/" in self.template or self.template.startswith("/v1/sensor-evaluations/")


def _resolve(param: dict[str, Any]) -> dict[str, Any]:
    ref = param.get("$ref")
    return DOC["parameters"][ref.rsplit("/", 1)[-1]] if ref else param


def operations() -> list[Operation]:
    found = []
    for template, item in DOC["paths"].items():
        for method, op in item.items():
            params = [_resolve(p) for p in op.get("parameters", [])]
            body = next((p["schema"] for p in params if p["in"] == "body"), None)
            found.append(
                Operation(
                    method.upper(),
                    template,
                    op["operationId"],
                    tuple(p["name"] for p in params if p["in"] == "path"),
                    {p["name"]: p for p in params if p["in"] == "query"},
                    body,
                    op.get("x-servo-auth") == "internal",
                )
            )
    return found


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
HOSTILE = st.sampled_from(
    [
        "..",
        ".",
        "../../etc/passwd",
        "a/../b",
        "%2e%2e",
        "/",
        "a/b",
        "",
        " ",
        "\u0000",
        "\n",
        "ünïcødé",
        "\U0001f600",
        "CON",
        "x" * 300,
        "y" * 5000,
        "ct1_",
        "ct1_!!!",
        "ct1_" + "A" * 400,
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "ledger",
        "state",
    ]
)
TEXT = st.text(max_size=40) | HOSTILE
# Strings of a body may also be a lone surrogate, which json.dumps sends as the escape \ud800.
BODY_TEXT = TEXT | st.just("\ud800")

# Raw JSON texts a black-box attack turned into 500s: nesting past the parser's recursion limit, an
# escaped lone surrogate (valid JSON, no UTF-8 form) and an integer past Python's int-from-text limit.
HOSTILE_JSON: dict[str, bytes] = {
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "lone surrogate": b'"\\ud800"',
    "huge integer": b"1" + b"0" * 5000,
}


def schema_values(
    schema: dict[str, Any], hints: Mapping[str, st.SearchStrategy[Any]], garbage: bool, depth: int = 0
) -> st.SearchStrategy[Any]:
    """Values shaped by a Swagger 2.0 schema; with ``garbage`` any leaf may be arbitrary JSON."""
    if "$ref" in schema:
        return schema_values(DEFINITIONS[schema["$ref"].rsplit("/", 1)[-1]], hints, garbage, depth)
    kind = schema.get("type")
    if kind == "object" and depth < 4:
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))

        def field(name: str) -> st.SearchStrategy[Any]:
            hint = hints.get(name)
            return hint if hint is not None else schema_values(props[name], hints, garbage, depth + 1)

        return st.fixed_dictionaries(
            {k: field(k) for k in props if k in required},
            optional={k: field(k) for k in props if k not in required},
        )
    if kind == "array" and depth < 4:
        items = schema_values(schema.get("items", {}), hints, garbage, depth + 1)
        return st.lists(items, min_size=0, max_size=4)
    leaf: st.SearchStrategy[Any]
    if "enum" in schema:
        leaf = st.sampled_from(schema["enum"])
    elif kind == "string" and schema.get("format") == "date-time":
        leaf = st.sampled_from(["2027-01-15T08:00:00Z", "1990-01-01T00:00:00Z", "not a time"])
    elif kind == "string":
        leaf = BODY_TEXT
    elif kind == "integer":
        low, high = schema.get("minimum", -5), schema.get("maximum", 10**6)
        leaf = st.integers(min_value=low - 1, max_value=high + 1)
    elif kind == "boolean":
        leaf = st.booleans()
    else:
        leaf = ANY_JSON
    return leaf | JSON_SCALARS if garbage else leaf


def bodies(
    op: Operation, good: Mapping[str, st.SearchStrategy[Any]], wild: Mapping[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[bytes | Any]:
    """A request body: JSON-encodable values or raw bytes.

    ``good`` hints mostly give real values (a valid body gets past validation to the service); ``wild``
    hints mix them with arbitrary text for the mutated bodies.
    """
    import json

    raw = st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"{", b"[]", b"null", b"\xff\xfe", b'{"a":NaN}', b"1e999", b'"x"', b"{}" * 3]),
        st.just(json.dumps({"deep": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}).encode()),
        st.sampled_from(list(HOSTILE_JSON.values())),
        st.sampled_from(list(HOSTILE_JSON.values())).map(lambda v: b'{"selection":[' + v + b"]}"),
    )
    if op.body is None:
        return st.one_of(st.just(b""), raw, ANY_JSON)
    valid = schema_values(op.body, good, garbage=False)
    return st.one_of(valid, valid, schema_values(op.body, wild, garbage=True), ANY_JSON, raw)


def path_value(real: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A path parameter, percent-encoded into one segment or (sometimes) raw.

    Newlines are left out: they never reach Servo's handler (see test_a_newline_in_a_path_segment_*).
    """
    value = (real | TEXT).map(lambda v: v.replace("\n", " "))
    return st.one_of(value.map(lambda v: quote(v, safe="")), value.map(lambda v: quote(v, safe="/.")))


HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=300)
