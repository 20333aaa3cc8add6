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


def _steps() -> dict[str, dict]:
    return {s["id"]: s for s in yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())["steps"]}


def test_ci_terraform_is_one_the_configuration_accepts() -> None:
    # The write-only secret arguments need Terraform >= 1.11 (versions.tf says so).
    required = re.search(
        r'required_version = ">= (\d+)\.(\d+)', (ROOT / "infra/environments/example/versions.tf").read_text()
    )
    assert required
    for step in _steps().values():
        if step["name"].startswith("hashicorp/terraform:"):
            major, minor = (int(x) for x in step["name"].split(":")[1].split(".")[:2])
            assert (major, minor) >= (int(required[1]), int(required[2])), step["name"]


def test_ci_uploads_with_the_script_and_plans_against_that_bucket() -> None:
    steps = _steps()
    assert steps["upload"]["args"][:2] == ["scripts/upload_functions.sh", "${_SOURCES_BUCKET}"]
    plan = steps["terraform-plan"]["args"]
    assert "-var=sources_bucket_name=${_SOURCES_BUCKET}" in plan
    assert not any("upload_sources" in a for a in plan)
