"""Sensors are found like schedules and land in the manifest's ``sensors[]`` (automation §3, issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest
from servo.sdk import DiscoveryError, ManifestValidationError, build_manifest, discover_assets

from tests.sdk.helpers import write

PROJECT = {
    "assets/__init__.py": "",
    "assets/raw.py": """
        from servo import asset, sensor, run_status_sensor, RunRequest

        @asset
        def a(ctx):
            return None

        @sensor(target=[a], minimum_interval_seconds=30)
        def files(ctx):
            return RunRequest(run_key="x")

        @run_status_sensor(run_status=["FAILED"])
        def on_failure(ctx):
            return None
        """,
    "assets/other.py": """
        from assets.raw import files  # re-imported: counted once
        """,
}
OPTIONS = {
    "tenant_id": "acme",
    "workspace_id": "prod",
    "code_version_id": "01JCODEVERSION000000000000",
    "git": None,
    "deployed_by": "ana",
    "deployed_at_ms": 1_736_935_200_000,
}
IDS = {"raw.a": "0190a5a0-0000-7000-8000-000000000000"}


def _project(root: Path, **extra: str) -> Path:
    for relative, source in {**PROJECT, **extra}.items():
        write(root, relative, source)
    return root


def test_discovery_finds_sensors_once_and_the_manifest_lists_them_sorted_in_canonical_form(
    tmp_path: Path,
) -> None:
    found = discover_assets(_project(tmp_path), strict=True)
    assert [d.id for d in found.sensor_definitions()] == ["files", "on_failure"]
    manifest = build_manifest(
        found.definitions(),
        sensors=found.sensor_definitions(),
        asset_ids=IDS,
        **OPTIONS,  # type: ignore[arg-type]
    )
    assert manifest["sensors"][0] == {
        "id": "files",
        "kind": "POLL",
        "target": ["raw.a"],
        "minimumIntervalSeconds": 30,
        "timeoutSeconds": 60,
        "defaultEnabled": False,
    }
    assert manifest["sensors"][1]["kind"] == "RUN_STATUS"


def test_a_manifest_without_sensors_has_no_sensors_field(tmp_path: Path) -> None:
    found = discover_assets(_project(tmp_path), strict=True)
    manifest = build_manifest(found.definitions(), asset_ids=IDS, **OPTIONS)  # type: ignore[arg-type]
    assert "sensors" not in manifest


def test_two_sensors_with_one_id_are_a_problem(tmp_path: Path) -> None:
    dup = """
        from servo import sensor

        @sensor(target="raw.a")
        def files(ctx):
            return None
        """
    with pytest.raises(DiscoveryError) as caught:
        discover_assets(_project(tmp_path, **{"assets/dup.py": dup}), strict=True)
    assert "sensor id files is already defined" in caught.value.message


def test_the_manifest_refuses_a_sensor_on_an_asset_it_does_not_hold(tmp_path: Path) -> None:
    lost = """
        from servo import sensor

        @sensor(target="raw.missing")
        def lost(ctx):
            return None
        """
    found = discover_assets(_project(tmp_path, **{"assets/lost.py": lost}), strict=True)
    with pytest.raises(ManifestValidationError) as caught:
        build_manifest(
            found.definitions(),
            sensors=found.sensor_definitions(),
            asset_ids=IDS,
            **OPTIONS,  # type: ignore[arg-type]
        )
    assert "sensor 'lost'" in caught.value.message and "raw.missing" in caught.value.message
