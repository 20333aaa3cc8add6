"""cloudbuild.yaml runs the delivery steps in order, with pinned images, applying the saved plan."""

from __future__ import annotations

import itertools
import re

import yaml

from tests.infra.conftest import ROOT


def test_steps_run_in_order_with_pinned_images() -> None:
    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    steps = build["steps"]
    assert [s["id"] for s in steps] == [
        "lint",
        "test",
        "package",
        "artifact-test",
        "upload",
        "terraform-init",
        "terraform-plan",
        "terraform-apply",
    ]
    for previous, step in itertools.pairwise(steps):
        assert step["waitFor"] == [previous["id"]]
    for step in steps:
        image = step["name"]
        assert "@sha256:" in image or re.search(r":\d+\.\d+\.\d+", image), image
    plan = next(s for s in steps if s["id"] == "terraform-plan")
    apply = next(s for s in steps if s["id"] == "terraform-apply")
    out = next(a for a in plan["args"] if a.startswith("-out="))
    assert apply["args"][-1] == out.removeprefix("-out=")
    artifact = next(s for s in steps if s["id"] == "artifact-test")
    assert "--python-path-only" not in artifact["args"] and "--site-packages" not in artifact["args"]
