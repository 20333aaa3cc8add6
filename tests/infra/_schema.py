"""Check every google / google-beta resource and data source of infra/ against the provider's schema
(scripts/provider_schema.py): unknown argument names, missing required arguments, and a block written
as an attribute or an attribute written as a block."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

from tests.infra import _tf
from tests.infra._tf import INFRA

sys.path.insert(0, str(INFRA.parent / "scripts"))
import provider_schema

# Terraform's own meta-arguments and blocks; `dynamic` blocks are checked through their content.
META = {"count", "for_each", "provider", "depends_on", "lifecycle", "provisioner", "connection"}


@cache
def schema() -> dict[str, Any]:
    return provider_schema.load()


def _name(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def _provider(body: dict[str, Any]) -> str:
    alias = body.get("provider")
    return "google-beta" if isinstance(alias, str) and "google-beta" in alias else "google"


def _check_body(struct: str, body: dict[str, Any], where: str, top: bool) -> list[str]:
    args: dict[str, Any] = schema()["structs"][struct]
    problems: list[str] = []
    given: set[str] = set()
    for key, value in body.items():
        if key.startswith("__") or (top and key in META):
            continue
        if key == "dynamic":
            for entry in value:
                for label, dyn in entry.items():
                    label = _name(label)
                    given.add(label)
                    spec = args.get(label)
                    if spec is None:
                        problems.append(f"{where}: unknown block {label!r} (dynamic)")
                    elif spec["block"] is None:
                        problems.append(f"{where}: {label!r} is an attribute, not a block (dynamic)")
                    else:
                        for content in dyn.get("content", []):
                            problems += _check_body(spec["block"], content, f"{where}.{label}", False)
            continue
        given.add(key)
        spec = args.get(key)
        is_block = isinstance(value, list) and any(
            isinstance(v, dict) and v.get("__is_block__") for v in value
        )
        if spec is None:
            problems.append(f"{where}: unknown argument {key!r}")
        elif is_block and spec["block"] is None:
            problems.append(f"{where}: {key!r} is an attribute (write `{key} = ...`), not a block")
        elif not is_block and spec["block"] is not None:
            problems.append(f"{where}: {key!r} is a block (write `{key} {{ ... }}`), not an attribute")
        elif is_block:
            for nested in value:
                problems += _check_body(spec["block"], nested, f"{where}.{key}", False)
    for key, spec in sorted(args.items()):
        if spec["required"] and key not in given:
            problems.append(f"{where}: required argument {key!r} is missing")
    return problems


def check_file(path: Path, root: Path = INFRA) -> tuple[list[str], int]:
    """Problems found in one .tf file, and how many google resources and data sources it holds."""
    parsed = _tf.parse(path)
    problems: list[str] = []
    checked = 0
    for kind in ("resource", "data"):
        for entry in parsed.get(kind, []):
            for rtype, named in entry.items():
                rtype = _name(rtype)
                if not rtype.startswith("google_"):
                    continue
                for name, body in named.items():
                    where = f"{path.relative_to(root)}: {kind} {rtype}.{_name(name)}"
                    provider = _provider(body)
                    struct = schema()[provider][kind].get(rtype)
                    checked += 1
                    if struct is None:
                        problems.append(f"{where}: no such {kind} in provider {provider}")
                        continue
                    problems += _check_body(struct, body, where, True)
    return problems, checked


def check_tree(root: Path = INFRA) -> tuple[list[str], int]:
    problems: list[str] = []
    checked = 0
    for path in sorted(root.rglob("*.tf")):
        found, count = check_file(path, root)
        problems += found
        checked += count
    return problems, checked
