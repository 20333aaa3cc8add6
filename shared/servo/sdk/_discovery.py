"""Find a project's assets by importing its modules from their files (user-surface §2).

Scans ``<root>/assets``, else ``<root>/src/assets``, else the whole root. Modules are named after their
path relative to the import base (``src/`` or the root), so intra-project imports work while they load;
afterwards ``sys.modules`` and ``sys.path`` are put back, so two discoveries of one project (or of two
projects with the same module names) never see each other's modules. The functions keep their module
globals, so module-level imports keep working; a project module imported lazily inside an asset body
is not found later (import it at module level).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import sys
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from servo.sdk._asset import ASSET_ATTR, AssetDefinition, definition_of
from servo.sdk._errors import DiscoveryError
from servo.sdk._schedules import SCHEDULE_ATTR, ScheduleDefinition
from servo.sdk._sensors import SENSOR_ATTR, SensorDefinition

PRUNED_DIRS = frozenset(
    {
        "__pycache__",
        ".venv",
        "venv",
        ".git",
        "tests",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "site-packages",
        "node_modules",
        ".servo",
        ".servo-dev",
    }
)
MAX_LISTED_PROBLEMS = 10


def _skipped(path: Path) -> bool:
    name = path.name
    return name.startswith(("test_", "conftest")) or name.endswith("_test.py")


@dataclass(frozen=True, slots=True)
class DiscoveryProblem:
    """Something that stops a module or an asset from being deployed."""

    kind: str  # "import" | "module_name" | "duplicate_key"
    file_path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file_path}:{self.line}" if self.line else self.file_path
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class DiscoveryResult(Mapping[str, Any]):
    """The assets found, by key (``ns.name`` -> the decorated function), plus any problems."""

    root: Path
    assets: Mapping[str, Any]
    problems: tuple[DiscoveryProblem, ...] = ()
    modules: tuple[str, ...] = field(default=())
    schedules: Mapping[str, ScheduleDefinition] = field(default_factory=lambda: MappingProxyType({}))
    sensors: Mapping[str, SensorDefinition] = field(default_factory=lambda: MappingProxyType({}))

    def __getitem__(self, key: str) -> Any:
        return self.assets[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.assets)

    def __len__(self) -> int:
        return len(self.assets)

    def definitions(self) -> list[AssetDefinition]:
        """The definitions, sorted by key."""
        return [definition_of(self.assets[key]) for key in sorted(self.assets)]

    def schedule_definitions(self) -> list[ScheduleDefinition]:
        """The schedules (``@schedule`` functions and module-level ``ScheduleDefinition``s), sorted by id."""
        return [self.schedules[sid] for sid in sorted(self.schedules)]

    def sensor_definitions(self) -> list[SensorDefinition]:
        """The sensors (``@sensor`` and ``@run_status_sensor`` functions), sorted by id."""
        return [self.sensors[sid] for sid in sorted(self.sensors)]

    def raise_for_problems(self) -> None:
        """Raise DiscoveryError listing up to 10 problems, if there are any."""
        if not self.problems:
            return
        listed = [str(p) for p in self.problems[:MAX_LISTED_PROBLEMS]]
        more = len(self.problems) - len(listed)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DiscoveryError(
            f"asset discovery found {len(self.problems)} problem(s) under {self.root}:\n  "
            + "\n  ".join(listed)
            + tail,
            details={"problems": listed, "count": len(self.problems)},
        )


def _scan_base(root: Path) -> tuple[Path, Path]:
    """(directory to scan, import base that module names are relative to)."""
    if (root / "assets").is_dir():
        return root / "assets", root
    if (root / "src" / "assets").is_dir():
        return root / "src" / "assets", root / "src"
    return root, root


def _source_files(scan: Path, base: Path) -> list[Path]:
    files: list[Path] = []
    for path in sorted(scan.rglob("*.py")):
        parts = path.relative_to(base).parts
        if any(part in PRUNED_DIRS or part.endswith(".egg-info") for part in parts[:-1]) or _skipped(path):
            continue
        files.append(path)
    return files


# Marks a code version computed by ``code_version``; other clients of the deploy API may name theirs
# freely (a git sha, a build id), and a worker cannot check those.
CODE_VERSION_PREFIX = "src-"


def code_version(root: Path | str) -> str:
    """The version of the project's code: a digest of every Python file under ``root`` (names and bytes,
    the folders discovery skips left out), so the same code has the same version on every machine.

    ``servo deploy`` records it as the manifest's ``codeVersionId``; a worker computes it from the code
    it loaded and refuses a task planned with another version, rather than run other code than was
    deployed.
    """
    root = Path(root).resolve()
    digest = hashlib.sha256()
    for path in _source_files(root, root):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{CODE_VERSION_PREFIX}{digest.hexdigest()[:24]}"


def _module_name(path: Path, base: Path) -> str | None:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(part.isidentifier() for part in parts):
        return None
    return ".".join(parts)


class _Importer:
    """Loads modules by file path under one base, tracking what it added to ``sys.modules``."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def load(self, name: str, path: Path) -> ModuleType:
        existing = sys.modules.get(name)
        if existing is not None and Path(getattr(existing, "__file__", "") or "") == path:
            return existing  # already imported by a sibling module during this discovery
        parent, _, _ = name.rpartition(".")
        if parent:
            self._package(parent)
        is_package = path.name == "__init__.py"
        spec = importlib.util.spec_from_file_location(
            name, path, submodule_search_locations=[str(path.parent)] if is_package else None
        )
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module

    def _package(self, name: str) -> None:
        directory = self.base.joinpath(*name.split("."))
        existing = sys.modules.get(name)
        if existing is not None and str(directory) in list(getattr(existing, "__path__", [])):
            return
        init = directory / "__init__.py"
        if init.is_file():
            self.load(name, init)
            return
        parent, _, _ = name.rpartition(".")
        if parent:
            self._package(parent)
        # A directory without __init__.py: an implicit namespace package rooted in the project only.
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(directory)]
        sys.modules[name] = importlib.util.module_from_spec(spec)


def _is_project_module(module: ModuleType, base: Path) -> bool:
    file = getattr(module, "__file__", None)
    locations = [file] if file else list(getattr(module, "__path__", None) or [])
    for location in locations:
        try:
            parts = Path(location).resolve().relative_to(base).parts
        except (TypeError, ValueError):
            continue
        if not any(part in PRUNED_DIRS for part in parts):
            return True
    return False


def _problem_from_exception(kind: str, path: Path, exc: BaseException) -> DiscoveryProblem:
    line = None
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(frame.filename) == path:
            line = frame.lineno
            break
    if isinstance(exc, SyntaxError) and exc.lineno and Path(exc.filename or "") == path:
        line = exc.lineno
    return DiscoveryProblem(kind, str(path), line, f"cannot import: {type(exc).__name__}: {exc}")


def discover_assets(root: Path | str, *, strict: bool = False) -> DiscoveryResult:
    """Import every module of the project under ``root`` and collect its ``@asset`` functions.

    Args:
        root: the project directory.
        strict: raise instead of returning problems (what ``servo validate``/``deploy`` use).

    Raises:
        DiscoveryError: ``strict`` and a module failed to import, a module name is not importable,
            or two functions declare the same asset key; the message lists up to 10 problems.
    """
    root = Path(root).resolve()
    scan, base = _scan_base(root)
    saved_modules = dict(sys.modules)
    saved_path = list(sys.path)
    sys.path.insert(0, str(base))
    problems: list[DiscoveryProblem] = []
    found: dict[str, Any] = {}
    schedules: dict[str, ScheduleDefinition] = {}
    sensors: dict[str, SensorDefinition] = {}
    modules: list[str] = []
    try:
        importer = _Importer(base)
        for path in _source_files(scan, base):
            name = _module_name(path, base)
            if name is None:
                problems.append(
                    DiscoveryProblem("module_name", str(path), None, "path is not an importable module name")
                )
                continue
            try:
                module = importer.load(name, path)
            except Exception as exc:  # any import failure is the project's problem, reported not raised
                problems.append(_problem_from_exception("import", path, exc))
                continue
            modules.append(name)
            _collect(module, found, problems)
            _collect_schedules(module, schedules, problems)
            _collect_sensors(module, sensors, problems)
    finally:
        sys.path[:] = saved_path
        # Only the project's own modules go: a library first imported by the project stays, since
        # C extensions (numpy, pyarrow) cannot be initialised twice in one process.
        for name in [n for n in sys.modules if n not in saved_modules]:
            if _is_project_module(sys.modules[name], base):
                del sys.modules[name]
        sys.modules.update(saved_modules)
    result = DiscoveryResult(
        root=root,
        assets=MappingProxyType(dict(sorted(found.items()))),
        problems=tuple(problems),
        modules=tuple(modules),
        schedules=MappingProxyType(dict(sorted(schedules.items()))),
        sensors=MappingProxyType(dict(sorted(sensors.items()))),
    )
    if strict:
        result.raise_for_problems()
    return result


def _collect(module: ModuleType, found: dict[str, Any], problems: list[DiscoveryProblem]) -> None:
    for value in vars(module).values():
        definition = getattr(value, ASSET_ATTR, None)
        # Count a function where it is defined, not where it is re-imported.
        if not isinstance(definition, AssetDefinition) or definition.code.module != module.__name__:
            continue
        key = str(definition.key)
        other = found.get(key)
        if other is None:
            found[key] = value
        elif other is not value:
            first = definition_of(other).code
            problems.append(
                DiscoveryProblem(
                    "duplicate_key",
                    definition.code.file_path,
                    definition.code.line_number,
                    f"asset key {key} is already defined at {first}",
                )
            )


def _collect_schedules(
    module: ModuleType, found: dict[str, ScheduleDefinition], problems: list[DiscoveryProblem]
) -> None:
    """Schedules like assets: one id per project; the same object re-imported elsewhere counts once."""
    for value in vars(module).values():
        definition = value if isinstance(value, ScheduleDefinition) else getattr(value, SCHEDULE_ATTR, None)
        if isinstance(definition, ScheduleDefinition):
            _collect_one(module, definition, found, problems, "schedule")


def _collect_sensors(
    module: ModuleType, found: dict[str, SensorDefinition], problems: list[DiscoveryProblem]
) -> None:
    """Sensors as schedules: one id per project, counted where the function is defined."""
    for value in vars(module).values():
        definition = getattr(value, SENSOR_ATTR, None)
        if isinstance(definition, SensorDefinition):
            _collect_one(module, definition, found, problems, "sensor")


def _collect_one(
    module: ModuleType, definition: Any, found: dict[str, Any], problems: list[DiscoveryProblem], kind: str
) -> None:
    if definition.code is not None and definition.code.module != module.__name__:
        return
    other = found.setdefault(definition.id, definition)
    if other is not definition:
        where = definition.code or other.code
        first = f" at {other.code}" if other.code else ""
        problems.append(
            DiscoveryProblem(
                f"duplicate_{kind}",
                where.file_path if where else str(module.__file__),
                where.line_number if where else None,
                f"{kind} id {definition.id} is already defined{first}",
            )
        )
