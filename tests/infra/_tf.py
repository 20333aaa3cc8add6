"""Read infra/ Terraform with python-hcl2 into plain values (quotes and parser bookkeeping removed)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

INFRA = Path(__file__).resolve().parents[2] / "infra"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            _plain(k): _plain(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("__"))
        }
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            # Interpolations keep their inner quotes unescaped (`"a-${f("x")}"`): just drop the outer pair.
            return value[1:-1]
    return value


@cache
def _parse_text(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = hcl2.loads(text)
    return parsed


def parse(path: Path) -> dict[str, Any]:
    """python-hcl2's parse of a file, as is (block markers kept); shared and cached by content, since
    the tests parse the same files many times (copies with one planted change included). Read only."""
    return _parse_text(path.read_text())


def load(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = _plain(parse(path))
    return parsed


def blocks(folder: Path, kind: str) -> dict[str, dict[str, Any]]:
    """``kind`` blocks (variable, module, locals, output) of every .tf file in ``folder``, by name."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.tf")):
        for entry in load(path).get(kind, []):
            found.update(entry)
    return found


def resources(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource of ``folder`` keyed by (type, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(folder.glob("*.tf")):
        for entry in load(path).get("resource", []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    found[(rtype, name)] = body
    return found


def tf_folders() -> list[Path]:
    return sorted({p.parent for p in INFRA.rglob("*.tf")})
