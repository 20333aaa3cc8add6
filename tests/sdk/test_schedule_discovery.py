"""Schedules are found like assets and land in the manifest's ``schedules[]`` (automation §3, issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest
from servo.sdk import DiscoveryError, ManifestValidationError, build_manifest, discover_assets

from tests.sdk.helpers import write

PROJECT = {
    "assets/__init__.py": "",
    "assets/raw.py": """
        from servo import asset, schedule, ScheduleDefinition

        @asset
        def a(ctx):
            return None

        @schedule(cron="*/5 * * * *", target=[a])
        def every_five():
            pass

        nightly = ScheduleDefinition(id="nightly", cron="@daily", target="raw.a", timezone="Europe/Paris")
        """,
    "assets/other.py": """
        from assets.raw import every_five, nightly  # re-imported: counted once
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


def _project(root: Path, **extra: str) -> Path:
    for relative, source in {**PROJECT, **extra}.items():
        write(root, relative, source)
    return root


def test_discovery_finds_decorated_and_module_level_schedules_once(tmp_path: Path) -> None:
    found = discover_assets(_project(tmp_path), strict=True)
    assert sorted(found.schedules) == ["every_five", "nightly"]
    assert [d.id for d in found.schedule_definitions()] == ["every_five", "nightly"]
    assert list(found) == ["raw.a"]  # the mapping stays the assets


def test_two_schedules_with_one_id_are_a_problem_naming_both_places(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        **{
            "assets/dup.py": """
                from servo import schedule

                @schedule(cron="@hourly", target="raw.a")
                def every_five():
                    pass
                """
        },
    )
    with pytest.raises(DiscoveryError) as caught:
        discover_assets(root, strict=True)
    assert "schedule id every_five is already defined" in caught.value.message


def test_manifest_lists_schedules_sorted_by_id_in_canonical_form(tmp_path: Path) -> None:
    found = discover_assets(_project(tmp_path), strict=True)
    manifest = build_manifest(
        found.definitions(),
        schedules=found.schedule_definitions(),
        asset_ids={"raw.a": "0190a5a0-0000-7000-8000-000000000000"},
        **OPTIONS,  # type: ignore[arg-type]
    )
    assert [s["id"] for s in manifest["schedules"]] == ["every_five", "nightly"]
    assert manifest["schedules"][1] == {
        "id": "nightly",
        "cron": "@daily",
        "timezone": "Europe/Paris",
        "target": ["raw.a"],
        "labels": {},
        "catchupWindowMinutes": 60,
        "maxCatchupTicks": 5,
        "defaultEnabled": False,
    }


def test_manifest_refuses_a_schedule_on_an_asset_it_does_not_hold(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        **{
            "assets/lost.py": """
                from servo import ScheduleDefinition

                lost = ScheduleDefinition(id="lost", cron="@hourly", target="raw.missing")
                """
        },
    )
    found = discover_assets(root, strict=True)
    with pytest.raises(ManifestValidationError) as caught:
        build_manifest(
            found.definitions(),
            schedules=found.schedule_definitions(),
            asset_ids={"raw.a": "0190a5a0-0000-7000-8000-000000000000"},
            **OPTIONS,  # type: ignore[arg-type]
        )
    assert "schedule 'lost'" in caught.value.message and "raw.missing" in caught.value.message
    assert caught.value.details["field"] == "target"
