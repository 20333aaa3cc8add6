from __future__ import annotations

import json
import subprocess
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from servo.core.canonical_json import canonical_bytes
from servo.core.planner import AssetGraph
from servo.sdk import (
    GitInfo,
    ManifestValidationError,
    assign_asset_ids,
    build_manifest,
    discover_assets,
    git_info,
    load_asset_ids,
    manifest_bytes,
    manifest_dependency_graph,
    new_uuid7,
    save_asset_ids,
    validate_assets,
)
from servo.sdk._manifest import _UUID7_RE

from tests.sdk.helpers import load_module, write

PROJECT = {
    "assets/raw.py": """
        from servo import asset, DailyPartitions, StaticPartitions

        @asset(partitions=[DailyPartitions(), StaticPartitions("region", ["eu", "us"])], owners=["ana"])
        def events(ctx):
            \"\"\"Raw events.\"\"\"
        """,
    "assets/staging.py": """
        from servo import asset, AssetIn, Resources

        @asset(deps=["raw/events"], tags={"tier": "silver"}, max_retries=4,
               resources=Resources(memory_mib=2048))
        def cleaned(ctx, events: AssetIn["raw.events"]):
            pass

        @asset(deps=[cleaned], timeout_seconds=60)
        def summary(ctx):
            pass
        """,
}


_COUNTER = count(1)


def mint() -> str:
    return new_uuid7(1_700_000_000_000 + next(_COUNTER), bytes(10))


def build(root: Path, **overrides: Any) -> dict[str, Any]:
    found = discover_assets(root, strict=True)
    ids = assign_asset_ids(found, load_asset_ids(root), mint)
    save_asset_ids(root, ids)
    options: dict[str, Any] = {
        "tenant_id": "acme",
        "workspace_id": "prod",
        "code_version_id": "01JCODEVERSION000000000000",
        "git": GitInfo(commit_sha="abc", branch="main"),
        "deployed_by": "ana",
        "deployed_at_ms": 1_736_935_200_000,
        "asset_ids": ids,
        "project_root": root,
    }
    options.update(overrides)
    return build_manifest(found.values(), **options)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for relative, source in PROJECT.items():
        write(tmp_path, relative, source)
    return tmp_path


def test_manifest_shape(project: Path) -> None:
    m = build(project)
    assert m["manifestVersion"] == "1.0"
    assert (m["tenantId"], m["workspaceId"], m["codeVersionId"]) == (
        "acme",
        "prod",
        "01JCODEVERSION000000000000",
    )
    assert m["deployedAt"] == "2025-01-15T10:00:00Z" and m["deployedBy"] == "ana"
    assert m["git"]["commitSha"] == "abc" and m["git"]["dirty"] is False
    assert m["schedules"] == [] and m["metadata"] == {}
    assert [(a["key"]["namespace"], a["key"]["name"]) for a in m["assets"]] == [
        ("raw", "events"),
        ("staging", "cleaned"),
        ("staging", "summary"),
    ]
    events, cleaned, summary = m["assets"]
    assert _UUID7_RE.fullmatch(events["id"])
    assert events["description"] == "Raw events." and events["owners"] == ["ana"]
    assert events["partitioning"] == {
        "isPartitioned": True,
        "dimensions": [
            {"name": "date", "kind": "time", "granularity": "day"},
            {"name": "region", "kind": "static", "values": ["eu", "us"]},
        ],
    }
    assert events["code"] == {
        "module": "assets.raw",
        "function": "events",
        "filePath": "assets/raw.py",
        "lineNumber": 4,
    }
    assert cleaned["dependencies"] == [
        {"upstreamKey": "raw.events", "parameterName": "events", "mapping": "identity"}
    ]
    assert cleaned["tags"] == {"tier": "silver"}
    assert cleaned["execution"] == {"maxRetries": 4, "timeoutSeconds": 3600}
    assert cleaned["resources"] == {"cpuMillicores": 1000, "memoryMib": 2048}
    assert summary["dependencies"] == [{"upstreamKey": "staging.cleaned", "mapping": "identity"}]
    assert summary["partitioning"] == {"isPartitioned": False, "dimensions": []}
    assert len(summary["transformFingerprint"]) == 16
    # The control plane's planner reads the same shape.
    assert AssetGraph.from_manifest_assets(m["assets"]).upstream["staging.summary"] == ("staging.cleaned",)


def test_manifest_is_deterministic_and_ids_are_stable(project: Path) -> None:
    first = manifest_bytes(build(project))
    lock = json.loads((project / ".servo" / "state.json").read_text())
    assert lock["version"] == "1.0" and sorted(lock["assetIds"]) == [
        "raw.events",
        "staging.cleaned",
        "staging.summary",
    ]
    second = manifest_bytes(build(project))
    assert first == second
    assert first == canonical_bytes(json.loads(first))  # canonical JSON: sorted keys, no whitespace
    assert b" " not in first.replace(b"Raw events.", b"")


def test_renamed_asset_gets_a_new_id_others_keep_theirs(project: Path) -> None:
    before = {f"{a['key']['namespace']}.{a['key']['name']}": a["id"] for a in build(project)["assets"]}
    write(project, "assets/staging.py", PROJECT["assets/staging.py"].replace("def summary", "def overview"))
    after = {f"{a['key']['namespace']}.{a['key']['name']}": a["id"] for a in build(project)["assets"]}
    assert after["raw.events"] == before["raw.events"]
    assert after["staging.cleaned"] == before["staging.cleaned"]
    assert after["staging.overview"] not in before.values()


def test_lockfile_missing_or_corrupt_starts_fresh(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert load_asset_ids(tmp_path) == {}
    (tmp_path / ".servo").mkdir()
    (tmp_path / ".servo" / "state.json").write_text("{not json")
    assert load_asset_ids(tmp_path) == {}
    assert "unreadable" in caplog.text
    good = new_uuid7()
    (tmp_path / ".servo" / "state.json").write_text(
        json.dumps({"version": "1.0", "assetIds": {"a.b": good, "c.d": "x"}})
    )
    assert load_asset_ids(tmp_path) == {"a.b": good}


def test_assign_asset_ids_reuses_and_mints() -> None:
    ids = assign_asset_ids(["b.y", "a.x"], {"a.x": "keep"}, lambda: "fresh")
    assert ids == {"a.x": "keep", "b.y": "fresh"}


def test_uuid7_layout() -> None:
    value = new_uuid7(0x0190_0000_0000, bytes(range(10)))
    assert value.startswith("01900000-0000-7")
    assert _UUID7_RE.fullmatch(value) and _UUID7_RE.fullmatch(new_uuid7())
    assert new_uuid7() != new_uuid7()


def test_validation_names_unknown_deps_duplicates_and_cycles(tmp_path: Path) -> None:
    module = load_module(
        tmp_path,
        "loop",
        """
        from servo import asset

        @asset(deps=["loop.c"])
        def a(ctx):
            pass

        @asset(deps=[a])
        def b(ctx):
            pass

        @asset(deps=[b, "loop.ghost"])
        def c(ctx):
            pass
        """,
    )
    dupe = load_module(
        tmp_path, "loop2", "from servo import asset\n\n@asset(namespace='loop')\ndef a(ctx):\n    pass\n"
    )
    with pytest.raises(ManifestValidationError) as info:
        validate_assets([module.a, module.b, module.c, dupe.a])
    text = str(info.value)
    path = tmp_path / "loop.py"
    assert f"{path}:12: asset loop.c depends on unknown asset loop.ghost" in text
    assert "dependency cycle: loop.a -> loop.b -> loop.c -> loop.a" in text
    assert f"{path}:4: dependency cycle" in text
    assert f"{tmp_path / 'loop2.py'}:3: duplicate asset key loop.a" in text
    assert info.value.details["cycle"] == ["loop.a", "loop.b", "loop.c", "loop.a"]


def test_build_manifest_refuses_invalid_graphs_and_missing_ids(project: Path) -> None:
    with pytest.raises(ManifestValidationError, match=r"no asset id for raw\.events"):
        build(project, asset_ids={"staging.cleaned": "x", "staging.summary": "y"})
    module = load_module(
        project, "lone", "from servo import asset\n\n@asset(deps=['x.y'])\ndef z(ctx):\n    pass\n"
    )
    with pytest.raises(ManifestValidationError, match=r"unknown asset x\.y"):
        build_manifest(
            [module.z],
            tenant_id="t",
            workspace_id="w",
            code_version_id="c",
            git=None,
            deployed_by="me",
            deployed_at_ms=0,
            asset_ids={"lone.z": "id"},
        )


def test_manifest_dependency_graph(project: Path) -> None:
    m = build(project)
    assert manifest_dependency_graph(m) == {
        "raw.events": [],
        "staging.cleaned": ["raw.events"],
        "staging.summary": ["staging.cleaned"],
    }
    other = {"assets": [{"key": "a.b", "dependencies": [{"upstreamKey": "x/y"}]}]}
    assert manifest_dependency_graph(other) == {"a.b": ["x.y"]}
    with pytest.raises(ManifestValidationError, match="assets\\[0\\]"):
        manifest_dependency_graph({"assets": [{"key": {"namespace": "A", "name": "b"}}]})


def test_git_info_reads_the_checkout_and_is_empty_elsewhere(tmp_path: Path) -> None:
    assert git_info(tmp_path / "nowhere") == GitInfo()
    repo = tmp_path / "repo"
    repo.mkdir()
    env = ["-c", "user.name=Ana", "-c", "user.email=ana@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "f.txt").write_text("x")
    subprocess.run(["git", "-C", str(repo), "add", "f.txt"], check=True)
    subprocess.run(["git", "-C", str(repo), *env, "commit", "-qm", "first commit"], check=True)
    info = git_info(repo)
    assert info.branch == "main" and len(info.commit_sha) == 40
    assert info.commit_message == "first commit" and info.author == "Ana <ana@example.com>"
    assert info.dirty is False and info.repository == ""
    (repo / "f.txt").write_text("y")
    assert git_info(repo).dirty is True


def test_freshness_minutes_reaches_the_manifest_only_when_given() -> None:
    """automation §3: ``@asset(freshness_minutes=...)`` feeds the staleness report's freshness policy."""
    from servo import asset as asset_decorator
    from servo.sdk import definition_of
    from servo.sdk._errors import AssetDefinitionError
    from servo.sdk._manifest import asset_manifest

    @asset_decorator(namespace="ns", freshness_minutes=60)
    def hourly(ctx):  # type: ignore[no-untyped-def]
        return None

    @asset_decorator(namespace="ns")
    def plain(ctx):  # type: ignore[no-untyped-def]
        return None

    assert asset_manifest(definition_of(hourly), "id-h")["freshnessMinutes"] == 60
    assert "freshnessMinutes" not in asset_manifest(definition_of(plain), "id-p")
    with pytest.raises(AssetDefinitionError, match="freshness_minutes"):

        @asset_decorator(namespace="ns", freshness_minutes=-1)
        def bad(ctx):  # type: ignore[no-untyped-def]
            return None
