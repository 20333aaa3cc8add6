"""Build one deterministic upload folder and zip per Cloud Function (style.md §3).

For every ``functions/<fn>/`` this writes ``build/functions/<fn>/`` holding the function's files, an
exact copy of ``shared/servo`` (Cloud Functions uploads one folder and follows neither ``../`` paths
nor symlinks) and a pinned ``requirements.txt``; then ``build/functions/<fn>.zip`` with sorted
entries and fixed timestamps, so the same sources always give the same bytes and Terraform's
``<fn>-<sha256>.zip`` object name changes only when a function's content does. Finally
``build/functions/manifest.json`` maps each function to its zip, sha256 and entry point; Terraform
and the artifact test both read it, so the entry point is named in one place.

Usage: ``python scripts/package_functions.py [--out build/functions] [--only fn ...]``
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import shutil
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Fixed zip timestamp: the earliest a zip can hold; wall-clock mtimes would make every build unique.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")
# Runtime dependencies of the project that no function imports: the CLI's terminal renderer and the
# Pub/Sub types used only by the local Eventarc stand-in (servo.dev). The artifact test proves the
# functions import without them; anything else in [project].dependencies ships.
NOT_FOR_FUNCTIONS = frozenset({"rich", "google-cloud-pubsub"})


class PackagingError(Exception):
    """A function folder or the dependency pins cannot produce a valid artifact."""


@dataclass(frozen=True, slots=True)
class Artifact:
    function: str
    zip_path: Path
    sha256: str
    entry_point: str


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if match is None:
        raise PackagingError(f"cannot read a package name from {spec!r}")
    return _canonical(match.group(1))


def read_pins(constraints: Path) -> dict[str, str]:
    """``name==version`` lines of the root lock, keyed by canonical name."""
    pins: dict[str, str] = {}
    for raw in constraints.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "==" not in line:
            raise PackagingError(f"constraints.txt must pin exactly, got {line!r}")
        name, version = line.split("==", 1)
        pins[_canonical(name)] = version.strip()
    return pins


def _installed_requires(name: str) -> list[str]:
    """Direct runtime requirements of an installed distribution, markers evaluated for this interpreter."""
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError as exc:
        raise PackagingError(f"{name} is not installed; run scripts/bootstrap.sh first") from exc
    found = []
    for spec in dist.requires or []:
        req = Requirement(spec)
        # Extras are never requested by the functions, so requirements gated on `extra == ...` drop out.
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        found.append(_canonical(req.name))
    return found


def function_requirements(pyproject: Path, constraints: Path) -> list[str]:
    """The pinned closure of the runtime dependencies the functions need (no dev tools, no CLI-only ones).

    The closure is walked over the installed distributions' metadata and every name is pinned from
    the root lock, so the zip installs the same versions the tests ran against.
    """
    project = tomllib.loads(pyproject.read_text())["project"]
    pins = read_pins(constraints)
    direct = [_requirement_name(s) for s in project["dependencies"]]
    todo = [name for name in direct if name not in NOT_FOR_FUNCTIONS]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_installed_requires(name))
    missing = sorted(seen - pins.keys())
    if missing:
        raise PackagingError(f"constraints.txt has no pin for {', '.join(missing)}")
    return [f"{name}=={pins[name]}" for name in sorted(seen)]


def entry_point_of(main_py: Path, function: str) -> str:
    """The function's entry point, which must be a top-level ``def <folder name>`` in its main.py."""
    if not main_py.is_file():
        raise PackagingError(f"{main_py.relative_to(ROOT)} is missing")
    tree = ast.parse(main_py.read_text(), filename=str(main_py))
    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    if function not in names:
        raise PackagingError(f"{main_py} defines no top-level function {function!r} (its entry point)")
    return function


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in _SKIP_DIRS for part in rel.parts) or path.suffix in _SKIP_SUFFIXES:
            continue
        if path.is_file():
            yield path


def stage(function: str, functions_dir: Path, shared_pkg: Path, requirements: list[str], out: Path) -> Path:
    """Write ``out/<function>/`` from scratch and return it."""
    target = out / function
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    source = functions_dir / function
    for path in _files(source):
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    for path in _files(shared_pkg):
        dest = target / "servo" / path.relative_to(shared_pkg)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    header = "# Generated by scripts/package_functions.py from pyproject.toml + constraints.txt\n"
    (target / "requirements.txt").write_text(header + "".join(f"{r}\n" for r in requirements))
    return target


def write_zip(folder: Path, zip_path: Path) -> str:
    """Deterministic zip of ``folder`` (sorted names, fixed time and mode); returns its sha256."""
    entries = sorted(path.relative_to(folder).as_posix() for path in _files(folder))
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the build host is
            archive.writestr(info, (folder / name).read_bytes(), compresslevel=9)
    return hashlib.sha256(zip_path.read_bytes()).hexdigest()


def discover(functions_dir: Path) -> list[str]:
    return sorted(p.name for p in functions_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def build(
    out: Path,
    only: Iterable[str] = (),
    *,
    root: Path = ROOT,
) -> list[Artifact]:
    """Stage and zip every function (or ``only`` those); writes ``out/manifest.json``."""
    functions_dir = root / "functions"
    names = discover(functions_dir)
    wanted = list(only) or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise PackagingError(f"no such function folder: {', '.join(unknown)}")
    requirements = function_requirements(root / "pyproject.toml", root / "constraints.txt")
    out.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for fn in sorted(wanted):
        entry = entry_point_of(functions_dir / fn / "main.py", fn)
        folder = stage(fn, functions_dir, root / "shared" / "servo", requirements, out)
        zip_path = out / f"{fn}.zip"
        artifacts.append(Artifact(fn, zip_path, write_zip(folder, zip_path), entry))
    manifest = {
        a.function: {"zip": a.zip_path.name, "sha256": a.sha256, "entry_point": a.entry_point}
        for a in artifacts
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return artifacts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "functions")
    parser.add_argument("--only", nargs="*", default=[], help="function names (default: every folder)")
    args = parser.parse_args(argv)
    try:
        artifacts = build(args.out, args.only)
    except PackagingError as exc:
        print(f"package_functions: {exc}", file=sys.stderr)
        return 1
    for artifact in artifacts:
        print(f"{artifact.sha256}  {artifact.zip_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
