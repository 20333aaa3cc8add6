"""Prove each function zip imports on a clean interpreter with only its own requirements.

For every entry of ``build/functions/manifest.json``: unpack the zip, install its requirements.txt,
``import main`` in a subprocess whose sys.path holds only the unpacked folder and the installed
packages, and check that the entry point Terraform deploys (the manifest's ``entry_point``) is a
callable. The servo package must come from the zip, never from the repository.

Modes:
- default: one fresh venv per zip (what cloudbuild.yaml runs); pip's wheel cache is reused.
- ``--python-path-only``: one shared temporary venv installed once (the zips pin identical
  requirements), then each zip imported from it — same proof, one install.
- ``--site-packages DIR``: no install at all; import against an existing site-packages (the fast
  variant ``make test`` runs with the project venv's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run with -S (no site, so no .pth files: the repository's editable servo install stays invisible)
# and -I (isolated: no cwd, no PYTHON* env); sys.path is exactly what this probe sets.
_PROBE = """
import importlib, json, sys
folder, packages, entry = sys.argv[1], sys.argv[2].split(":") if sys.argv[2] else [], sys.argv[3]
sys.path[:0] = [folder, *packages]
main = importlib.import_module("main")
import servo
target = getattr(main, entry, None)
print(json.dumps({"main": main.__file__, "servo": servo.__file__, "callable": callable(target)}))
"""


class ArtifactError(Exception):
    """A zip does not import, or its entry point is missing."""


def unpack(zip_path: Path, into: Path) -> Path:
    folder = into / zip_path.stem
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(folder)
    return folder


def make_venv(where: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    return where / "bin" / "python"


def site_packages_of(python: Path) -> list[str]:
    out = subprocess.run(
        [str(python), "-c", "import site, json; print(json.dumps(site.getsitepackages()))"],
        check=True,
        capture_output=True,
        text=True,
    )
    paths: list[str] = json.loads(out.stdout)
    return paths


def pip_install(python: Path, requirements: Path) -> None:
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(requirements),
        ],
        check=True,
    )


def probe(python: Path, folder: Path, packages: list[str], entry_point: str) -> dict[str, object]:
    """Import ``main`` from ``folder`` with only ``packages`` beside it; the entry point must be callable."""
    result = subprocess.run(
        [str(python), "-I", "-S", "-c", _PROBE, str(folder), ":".join(packages), entry_point],
        capture_output=True,
        text=True,
        cwd=folder,
    )
    if result.returncode != 0:
        raise ArtifactError(f"{folder.name}: import main failed:\n{result.stderr.strip()}")
    found: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    if not found["callable"]:
        raise ArtifactError(f"{folder.name}: main.{entry_point} is missing or not callable")
    for key in ("main", "servo"):
        if not str(found[key]).startswith(str(folder)):
            raise ArtifactError(f"{folder.name}: {key} was imported from {found[key]}, not from the artifact")
    return found


def run(
    manifest_path: Path,
    *,
    mode: str = "venv-per-zip",
    site_packages: Path | None = None,
    python: Path = Path(sys.executable),
) -> list[str]:
    """Check every artifact of the manifest; returns the function names checked."""
    manifest_path = manifest_path.resolve()
    manifest = json.loads(manifest_path.read_text())
    checked = []
    with tempfile.TemporaryDirectory(prefix="servo-artifacts-") as tmp:
        scratch = Path(tmp)
        shared_python: Path | None = None
        shared_packages: list[str] = []
        if mode == "site-packages":
            if site_packages is None:
                raise ArtifactError("--site-packages needs a directory")
            shared_python, shared_packages = python, [str(site_packages.resolve())]
        for fn, entry in sorted(manifest.items()):
            folder = unpack(manifest_path.parent / entry["zip"], scratch / "unpacked")
            if mode == "venv-per-zip":
                env_python = make_venv(scratch / f"venv-{fn}")
                pip_install(env_python, folder / "requirements.txt")
                probe(env_python, folder, site_packages_of(env_python), entry["entry_point"])
            else:
                if shared_python is None:
                    shared_python = make_venv(scratch / "venv-shared")
                    pip_install(shared_python, folder / "requirements.txt")
                    shared_packages = site_packages_of(shared_python)
                probe(shared_python, folder, shared_packages, entry["entry_point"])
            checked.append(fn)
            print(f"artifact ok: {fn} ({entry['zip']}, entry point {entry['entry_point']})")
    return checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=ROOT / "build" / "functions" / "manifest.json")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--python-path-only", action="store_true", help="install once into a shared temp venv")
    group.add_argument(
        "--site-packages", type=Path, help="import against an existing site-packages; no install"
    )
    args = parser.parse_args(argv)
    mode = (
        "site-packages" if args.site_packages else "shared-venv" if args.python_path_only else "venv-per-zip"
    )
    try:
        run(args.manifest, mode=mode, site_packages=args.site_packages)
    except (ArtifactError, subprocess.CalledProcessError) as exc:
        print(f"artifact_test: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
