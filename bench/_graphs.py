"""The benchmark graphs written out as projects: no-op ``@asset`` chains and a fan-out for Servo, and the
same graphs as Dagster modules.

Generated files, not hand-written ones, so the chain length is one number and both sides get the
identical graph.
"""

from __future__ import annotations

from pathlib import Path

NAMESPACE_CHAIN = "chain{n}"


def chain_keys(n: int) -> list[str]:
    return [f"chain{n}.a{i:02d}" for i in range(n)]


def fanout_namespace(children: int) -> str:
    return f"fanout{children + 1}"


def fanout_keys(children: int) -> list[str]:
    ns = fanout_namespace(children)
    return [f"{ns}.root"] + [f"{ns}.c{i:04d}" for i in range(children)]


def _servo_chain_module(n: int) -> str:
    lines = ["from servo.sdk import asset", ""]
    for i in range(n):
        deps = f'deps=["chain{n}.a{i - 1:02d}"], ' if i else ""
        lines += ["", f'@asset({deps}namespace="chain{n}")', f"def a{i:02d}(context):", "    return None", ""]
    return "\n".join(lines)


def _servo_fanout_module(children: int) -> str:
    ns = fanout_namespace(children)
    lines = ["from servo.sdk import asset", "", "", f'@asset(namespace="{ns}")', "def root(context):"]
    lines += ["    return None", ""]
    for i in range(children):
        lines += ["", f'@asset(deps=["{ns}.root"], namespace="{ns}")', f"def c{i:04d}(context):"]
        lines += ["    return None", ""]
    return "\n".join(lines)


def write_servo_project(root: Path, chains: tuple[int, ...], fanouts: tuple[int, ...]) -> Path:
    """A project whose ``assets/`` package holds one module per graph (chains of ``chains`` assets,
    fan-outs of one root and ``fanouts`` children, each in a namespace of its own); returns ``root``."""
    assets = root / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for n in chains:
        (assets / f"bench_chain{n}.py").write_text(_servo_chain_module(n))
    for children in fanouts:
        (assets / f"bench_{fanout_namespace(children)}.py").write_text(_servo_fanout_module(children))
    return root


def _dagster_fanout_module(children: int) -> str:
    lines = ["from dagster import asset", "", "", "@asset", "def root() -> None:", "    return None", ""]
    for i in range(children):
        lines += ["", "@asset(deps=[root])", f"def c{i:04d}() -> None:", "    return None", ""]
    return "\n".join(lines)


def write_dagster_fanout(path: Path, children: int) -> Path:
    """A Dagster module with the fan-out Servo runs: one no-op root and ``children`` no-op dependents."""
    path.write_text(_dagster_fanout_module(children))
    return path


def write_dagster_chain(path: Path, n: int) -> Path:
    """A Dagster definitions file with an ``n``-asset no-op chain (module-level assets are picked up)."""
    lines = ["from dagster import asset", ""]
    for i in range(n):
        deps = f"deps=[a{i - 1:02d}]" if i else ""
        lines += ["", f"@asset({deps})", f"def a{i:02d}() -> None:", "    return None", ""]
    path.write_text("\n".join(lines))
    return path
