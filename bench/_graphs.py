"""The benchmark graphs written out as projects: no-op ``@asset`` chains and a fan-out for Servo, and the
same chains as a Dagster definitions file.

Generated files, not hand-written ones, so the chain length is one number and both sides get the
identical graph.
"""

from __future__ import annotations

from pathlib import Path

NAMESPACE_CHAIN = "chain{n}"
FANOUT = "fanout"


def chain_keys(n: int) -> list[str]:
    return [f"chain{n}.a{i:02d}" for i in range(n)]


def fanout_keys(children: int) -> list[str]:
    return [f"{FANOUT}.root"] + [f"{FANOUT}.c{i:04d}" for i in range(children)]


def _servo_chain_module(n: int) -> str:
    lines = ["from servo.sdk import asset", ""]
    for i in range(n):
        deps = f'deps=["chain{n}.a{i - 1:02d}"], ' if i else ""
        lines += ["", f'@asset({deps}namespace="chain{n}")', f"def a{i:02d}(context):", "    return None", ""]
    return "\n".join(lines)


def _servo_fanout_module(children: int) -> str:
    lines = ["from servo.sdk import asset", "", "", f'@asset(namespace="{FANOUT}")', "def root(context):"]
    lines += ["    return None", ""]
    for i in range(children):
        lines += ["", f'@asset(deps=["{FANOUT}.root"], namespace="{FANOUT}")', f"def c{i:04d}(context):"]
        lines += ["    return None", ""]
    return "\n".join(lines)


def write_servo_project(root: Path, chains: tuple[int, ...], fanout_children: int) -> Path:
    """A project whose ``assets/`` package holds one module per graph; returns ``root``."""
    assets = root / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for n in chains:
        (assets / f"bench_chain{n}.py").write_text(_servo_chain_module(n))
    (assets / "bench_fanout.py").write_text(_servo_fanout_module(fanout_children))
    return root


def write_dagster_chain(path: Path, n: int) -> Path:
    """A Dagster definitions file with an ``n``-asset no-op chain (module-level assets are picked up)."""
    lines = ["from dagster import asset", ""]
    for i in range(n):
        deps = f"deps=[a{i - 1:02d}]" if i else ""
        lines += ["", f"@asset({deps})", f"def a{i:02d}() -> None:", "    return None", ""]
    path.write_text("\n".join(lines))
    return path
