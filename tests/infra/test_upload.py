"""scripts/upload_functions.sh uploads each zip under the very name Terraform deploys
(servo-core local.source_objects, evaluated by the real Terraform)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.infra import _refs
from tests.infra.conftest import CORE, GIVEN, ROOT, core_variables


def test_uploaded_names_are_the_objects_terraform_deploys(manifest: Path, tmp_path: Path) -> None:
    # gcloud is the one thing not here: a stand-in on PATH records what it was asked to copy.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    (bin_dir / "gcloud").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "gcloud").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "upload_functions.sh"), "b-sources", str(manifest)],
        env=env,
        check=True,
    )
    copied = [line.split() for line in calls.read_text().splitlines()]
    assert all(c[:4] == ["storage", "cp", "--no-clobber", c[3]] for c in copied)
    uploaded = {c[4].removeprefix("gs://b-sources/") for c in copied}
    deployed = _refs.evaluate_locals(CORE, core_variables(manifest), GIVEN)["source_objects"]
    assert uploaded == set(deployed.values())
    zips = {Path(c[3]).name for c in copied}
    assert zips == {a["zip"] for a in json.loads(manifest.read_text()).values()}
