"""Layers only point down (design §3): each package imports only from the layers below it.

Read from the source with ``ast`` (imports inside functions count too), so a lazy import cannot hide
an upward edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "shared" / "servo"

# What each layer may import from servo, besides itself. Top-level modules (errors, settings, tokens,
# jsonlog) sit below the services; http, sdk, worker, cli and dev sit above them.
BELOW_SERVICES = {"core", "store", "dispatch", "projections", "errors", "settings", "tokens", "jsonlog"}
ALLOWED = {
    "core": set(),
    "tokens": {"core"},
    "jsonlog": set(),
    "store": {"core", "errors"},
    "dispatch": {"core", "errors"},
    "projections": {"core", "store", "errors"},
    "services": BELOW_SERVICES,
}


def _servo_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "servo" and len(parts) > 1:
                found.add(parts[1])
    return found


def _modules(layer: str) -> list[Path]:
    folder = PACKAGE / layer
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{layer}.py"]


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    upward = {
        str(path.relative_to(PACKAGE)): sorted(_servo_imports(path) - ALLOWED[layer] - {layer})
        for path in _modules(layer)
    }
    assert {path: names for path, names in upward.items() if names} == {}
