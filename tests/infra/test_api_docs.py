"""docs/api.md is the rendering of infra/openapi.yaml, regenerated with scripts/render_api_docs.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_api_docs", ROOT / "scripts" / "render_api_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_api_reference_is_the_rendered_document() -> None:
    committed = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert committed == _renderer().render(), "run: python scripts/render_api_docs.py"


def test_the_reference_names_every_operation_status_and_definition() -> None:
    import yaml

    doc = yaml.safe_load((ROOT / "infra" / "openapi.yaml").read_text(encoding="utf-8"))
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert f"`{method.upper()} {path}`" in text
            section = text.split(f"### {op['operationId']}\n", 1)[1].split("\n### ", 1)[0]
            for status in op["responses"]:
                assert f"\n| {status} |" in section, (op["operationId"], status)
    for name in doc["definitions"]:
        assert f"\n### {name}\n" in text
