"""The google / google-beta provider schema, offline, for checking infra/ without `terraform init`.

No provider binary can be downloaded here, so `terraform validate` cannot run. The cdktf prebuilt
bindings on PyPI carry each provider's full configuration schema in their jsii assembly (every
resource and data source, every argument, whether it is optional, and whether it is a nested block).
They are downloaded (pinned by hash in infra/schema-requirements.txt) into .venv-iac, never imported
nor installed into .venv: only pip download is used, since their own dependencies (jsii, node) are
not needed to read a JSON file. They are reduced to one small JSON file the tests read:

    {"google":      {"resource": {type: struct}, "data": {type: struct}},
     "google-beta": {...},
     "structs":     {struct: {argument: {"required": bool, "block": struct | null}}}}

Usage: python scripts/provider_schema.py   (prints the path of the schema; idempotent)
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-iac"
REQUIREMENTS = ROOT / "infra" / "schema-requirements.txt"
# The provider release the bindings were generated from (stated in their README); within
# `~> 6.14` of infra's required_providers.
PROVIDER_VERSION = "6.37.0"
PACKAGES = {"google": "cdktf_cdktf_provider_google", "google-beta": "cdktf_cdktf_provider_google_beta"}
# Named by the pins, so that changing them rebuilds the schema.
SCHEMA = VENV / f"provider-schema-{hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]}.json"

_REPRESENTS = re.compile(
    r"Represents a \{@link \S+/hashicorp/[\w-]+/([\d.]+)/docs/(resources|data-sources)/\w+ (google_\w+)\}"
)
_ANCHOR = re.compile(r"#(\w+) \w+#\w+\}")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _download() -> dict[str, Path]:
    wheels = VENV / "wheels"
    pins = dict(re.findall(r"^(cdktf-cdktf-provider-[\w-]+)==(\S+)", REQUIREMENTS.read_text(), re.M))

    def wheel(provider: str) -> Path:
        name = PACKAGES[provider]
        return wheels / f"{name}-{pins[name.replace('_', '-')]}-py3-none-any.whl"

    if not all(wheel(p).exists() for p in PACKAGES):
        # pip of the running interpreter; --require-hashes: a fresh machine gets the very same bytes.
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--require-hashes", "-r", str(REQUIREMENTS), "-d", str(wheels)],
            check=True,
        )  # fmt: skip
    return {p: wheel(p) for p in PACKAGES}


def _assembly(wheel: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as zf:
        inner = next(n for n in zf.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(zf.read(inner))) as tgz:
            member = tgz.extractfile("package/.jsii")
            assert member is not None
            loaded: dict[str, Any] = json.load(member)
            return loaded


def _struct_of(kind: dict[str, Any], types: dict[str, Any]) -> str | None:
    """The struct a property type names (a single nested block, or a list/set of them), else None."""
    if "fqn" in kind:
        target = types.get(kind["fqn"])
        return kind["fqn"] if target and target.get("datatype") else None
    if "collection" in kind:
        return _struct_of(kind["collection"]["elementtype"], types)
    if "union" in kind:
        for option in kind["union"]["types"]:
            found = _struct_of(option, types)
            if found:
                return found
    return None


def _argument_name(prop: dict[str, Any]) -> str:
    anchor = _ANCHOR.search(prop.get("docs", {}).get("remarks", ""))
    return anchor.group(1) if anchor else _CAMEL.sub(r"_\1", prop["name"]).lower()


def _reduce(types: dict[str, Any], structs: dict[str, Any], fqn: str) -> None:
    if fqn in structs:
        return
    structs[fqn] = args = {}
    for prop in types[fqn].get("properties", []):
        block = _struct_of(prop["type"], types)
        args[_argument_name(prop)] = {"required": not prop.get("optional", False), "block": block}
        if block:
            _reduce(types, structs, block)


def _provider(assembly: dict[str, Any], structs: dict[str, Any]) -> dict[str, dict[str, str]]:
    types = assembly["types"]
    found: dict[str, dict[str, str]] = {"resource": {}, "data": {}}
    for spec in types.values():
        represents = _REPRESENTS.search(spec.get("docs", {}).get("summary", ""))
        if spec.get("kind") != "class" or not represents:
            continue
        if represents.group(1) != PROVIDER_VERSION:
            found_version = represents.group(1)
            raise SystemExit(f"the pinned bindings describe provider {found_version}, not {PROVIDER_VERSION}")
        params = spec.get("initializer", {}).get("parameters", [])
        config = next((p["type"]["fqn"] for p in params if p["name"] == "config"), None)
        if config is None:
            continue
        _reduce(types, structs, config)
        kind = "resource" if represents.group(2) == "resources" else "data"
        found[kind][represents.group(3)] = config
    return found


def ensure() -> Path:
    """Download the pinned bindings and write the reduced schema once; later calls only return it."""
    if SCHEMA.exists():
        return SCHEMA
    VENV.mkdir(exist_ok=True)
    with open(VENV / ".lock", "w") as lock:
        # Two pytest workers may ask at once on a fresh machine: one builds, the other waits.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if SCHEMA.exists():
            return SCHEMA
        structs: dict[str, Any] = {}
        schema: dict[str, Any] = {p: _provider(_assembly(w), structs) for p, w in _download().items()}
        schema["structs"] = structs
        partial = SCHEMA.with_suffix(".partial")
        partial.write_text(json.dumps(schema, sort_keys=True))
        os.replace(partial, SCHEMA)
    return SCHEMA


def load() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(ensure().read_text())
    return schema


if __name__ == "__main__":
    print(ensure())
