"""Load throwaway user modules from real files, so file:line and source fingerprints are real."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType


def load_module(directory: Path, name: str, source: str) -> ModuleType:
    path = directory / f"{name.replace('.', '_')}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(root: Path, relative: str, source: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path
