"""`servo init` writes a project whose worker image installs Servo itself, not the index's namesake."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from tests.cli.conftest import invoke


def _init(tmp_path: Path) -> Path:
    result = invoke("init", str(tmp_path / "shop"))
    assert result.exit_code == 0, result.stderr
    return tmp_path / "shop"


def test_requirements_pin_servos_own_dependencies_and_never_a_bare_servo(tmp_path: Path) -> None:
    lines = (_init(tmp_path) / "requirements.txt").read_text().splitlines()
    assert lines and all("==" in line for line in lines), lines
    assert not any(line.split("==")[0].strip().lower() == "servo" for line in lines)
    declared = [r for r in metadata.requires("servo") or [] if "extra ==" not in r]
    assert lines == declared


def test_the_image_runs_the_vendored_servo(tmp_path: Path) -> None:
    project = _init(tmp_path)
    dockerfile = (project / "Dockerfile").read_text()
    assert "ENV PYTHONUNBUFFERED=1 PYTHONPATH=/app/vendor" in dockerfile
    assert 'CMD ["python", "-m", "servo", "worker"' in dockerfile
    # What the image's CMD runs, with only the project's vendor/ on the path.
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "PYTHONPATH": str(project / "vendor"),
    }
    where = subprocess.run(
        [sys.executable, "-c", "import servo; print(servo.__file__)"],
        cwd=project, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(project / "vendor")
    served = subprocess.run(
        [sys.executable, "-m", "servo", "worker", "--help"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert served.returncode == 0, served.stderr
    assert "Serve this project's assets" in served.stdout


def test_the_generated_readme_links_nowhere_invalid(tmp_path: Path) -> None:
    readme = (_init(tmp_path) / "README.md").read_text()
    assert "example.invalid" not in readme
    assert "vendor/servo" in readme
