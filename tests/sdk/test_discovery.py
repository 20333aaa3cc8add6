from __future__ import annotations

import sys
from pathlib import Path

import pytest
from servo.sdk import DiscoveryError, definition_of, discover_assets

from tests.sdk.helpers import write

CHAIN = {
    "assets/__init__.py": "",
    "assets/raw.py": """
        from servo import asset

        @asset
        def a(ctx):
            return {"row_count": 1}
        """,
    "assets/staging.py": """
        from servo import asset
        from assets.raw import a  # re-imported: counted once, where it is defined

        @asset(deps=[a])
        def b(ctx, a):
            return None
        """,
    "assets/marts/__init__.py": "",
    "assets/marts/report.py": """
        from servo import asset, AssetIn
        from .helpers import LABEL

        @asset(namespace="marts")
        def c(ctx, b: AssetIn["staging.b"]):
            return LABEL
        """,
    "assets/marts/helpers.py": "LABEL = 'ok'\n",
    "assets/test_skip.py": "raise RuntimeError('test files are not scanned')\n",
    "assets/tests/boom.py": "raise RuntimeError('tests dirs are pruned')\n",
    "assets/__pycache__/junk.py": "raise RuntimeError('pruned')\n",
}


def make_project(root: Path, extra: dict[str, str] | None = None) -> Path:
    for relative, source in {**CHAIN, **(extra or {})}.items():
        write(root, relative, source)
    return root


def test_discovers_the_chain_under_assets(tmp_path: Path) -> None:
    before = set(sys.modules)
    found = discover_assets(make_project(tmp_path))
    assert found.problems == ()
    assert sorted(found) == ["marts.c", "raw.a", "staging.b"]
    assert definition_of(found["staging.b"]).upstream_keys == ("raw.a",)
    assert definition_of(found["marts.c"]).upstream_keys == ("staging.b",)
    assert found["marts.c"](None, {}) == "ok"  # module globals survive the sys.modules clean-up
    assert [str(d.key) for d in found.definitions()] == ["marts.c", "raw.a", "staging.b"]
    assert set(sys.modules) == before


def test_libraries_imported_by_the_project_stay_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = tmp_path / "lib"
    write(library, "h6_thirdparty_lib.py", "VALUE = 7\n")
    monkeypatch.syspath_prepend(str(library))
    project = tmp_path / "project"
    write(
        project,
        "assets/uses.py",
        "import h6_thirdparty_lib\nfrom servo import asset\n\n@asset\ndef x(ctx):\n    pass\n",
    )
    try:
        assert list(discover_assets(project)) == ["uses.x"]
        # Re-importing a C extension in one process fails, so libraries are never unloaded.
        assert "h6_thirdparty_lib" in sys.modules
        assert "assets.uses" not in sys.modules and "assets" not in sys.modules
    finally:
        sys.modules.pop("h6_thirdparty_lib", None)


def test_src_layout_and_whole_root_fallback(tmp_path: Path) -> None:
    src = tmp_path / "src_project"
    write(src, "src/assets/x.py", "from servo import asset\n\n@asset\ndef one(ctx):\n    pass\n")
    assert list(discover_assets(src)) == ["x.one"]
    flat = tmp_path / "flat"
    write(flat, "pipeline.py", "from servo import asset\n\n@asset\ndef two(ctx):\n    pass\n")
    write(flat, ".venv/lib/site.py", "raise RuntimeError('pruned')\n")
    write(flat, "conftest.py", "raise RuntimeError('skipped')\n")
    write(flat, "util_test.py", "raise RuntimeError('skipped')\n")
    assert list(discover_assets(flat)) == ["pipeline.two"]


def test_two_discoveries_do_not_share_modules(tmp_path: Path) -> None:
    one = make_project(tmp_path / "one")
    two = tmp_path / "two"
    write(two, "assets/raw.py", "from servo import asset\n\n@asset\ndef other(ctx):\n    pass\n")
    assert "raw.a" in discover_assets(one)
    assert list(discover_assets(two)) == ["raw.other"]
    # Editing a module between calls is seen: nothing stale is cached.
    write(one, "assets/raw.py", "from servo import asset\n\n@asset\ndef a2(ctx):\n    pass\n")
    assert "raw.a2" in discover_assets(one)


def test_broken_module_and_duplicate_key_are_reported(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        {
            "assets/broken.py": "import servo\n\nraise ValueError('kaboom')\n",
            "assets/syntax.py": "def (:\n",
            "assets/dupe.py": """
                from servo import asset

                @asset(namespace="raw")
                def a(ctx):
                    pass
                """,
            "assets/bad-name.py": "X = 1\n",
        },
    )
    found = discover_assets(root)
    assert sorted(found) == ["marts.c", "raw.a", "staging.b"]
    by_kind = {(p.kind, Path(p.file_path).name): p for p in found.problems}
    broken = by_kind[("import", "broken.py")]
    assert broken.line == 3 and "ValueError: kaboom" in broken.message
    assert by_kind[("import", "syntax.py")].line == 1
    assert ("module_name", "bad-name.py") in by_kind
    # Files load in path order, so dupe.py defines raw.a first and raw.py is the duplicate.
    dupe = by_kind[("duplicate_key", "raw.py")]
    assert dupe.line == 4 and f"raw.a is already defined at {root / 'assets' / 'dupe.py'}:4" in dupe.message

    with pytest.raises(DiscoveryError) as info:
        discover_assets(root, strict=True)
    text = str(info.value)
    assert "4 problem(s)" in text and "kaboom" in text and "raw.a" in text
    assert f"{dupe.file_path}:4" in text


def test_strict_lists_at_most_ten_problems(tmp_path: Path) -> None:
    for i in range(12):
        write(tmp_path, f"assets/m{i:02d}.py", "raise ImportError('nope')\n")
    with pytest.raises(DiscoveryError) as info:
        discover_assets(tmp_path, strict=True)
    assert len(info.value.details["problems"]) == 10
    assert info.value.details["count"] == 12
    assert "and 2 more" in str(info.value)


def test_empty_project_finds_nothing(tmp_path: Path) -> None:
    found = discover_assets(tmp_path, strict=True)
    assert len(found) == 0 and found.problems == ()
