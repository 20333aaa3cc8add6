"""What ``servo init NAME`` writes: a runnable project with an A → B → C chain and a worker image."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from servo.cli._errors import CliError

_NAMESPACE_RE = re.compile(r"^[a-z][a-z0-9_]*$")

SERVO_TOML = """\
# Servo project configuration. Environment variables (SERVO_API_URL, SERVO_WORKSPACE,
# SERVO_TENANT, SERVO_TOKEN) and command-line flags override these values.

[project]
name = "{name}"

[api]
url = "http://127.0.0.1:8080"   # `servo dev` serves here by default
workspace = "default"
tenant = "default"

[dev]
port = 8080
data = ".servo-dev/data"
"""

ASSETS = '''\
"""An example chain: raw -> cleaned -> report. Run it with `servo run {ns}.raw --include-downstream`."""

from servo import asset


@asset(namespace="{ns}")
def raw(ctx):
    """Pretend to load raw records."""
    print("loading raw records")
    return {{"row_count": 3}}


@asset(namespace="{ns}", deps=[raw])
def cleaned(ctx):
    """Clean what raw loaded."""
    print("cleaning 3 records")
    return {{"row_count": 3}}


@asset(namespace="{ns}", deps=[cleaned], max_retries=1)
def report(ctx):
    """Summarise the cleaned records."""
    print("report: 3 records, all clean")
'''

DOCKERFILE = """\
# The worker image: Cloud Run (or any container host) runs `servo worker` serving ./assets.
# vendor/servo is the Servo that `servo init` ran (the index's "servo" is another project), and
# requirements.txt pins exactly the dependencies that Servo declares.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PYTHONPATH=/app/vendor
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# SERVO_DISPATCH_SECRET must be set at deploy time (the worker refuses unauthenticated dispatches).
EXPOSE 8080
CMD ["python", "-m", "servo", "worker", "--host", "0.0.0.0", "--port", "8080"]
"""

GITIGNORE = ".servo-dev/\n.servo/\n__pycache__/\n"

README = """\
# {name}

A Servo project: assets in `assets/`, configuration in `servo.toml`, a worker image in `Dockerfile`.

```bash
servo dev                                   # terminal 1: the local stack (Ctrl-C stops it)
servo validate                              # terminal 2: check the asset graph
servo deploy
servo run {ns}.raw --include-downstream --wait
servo status                                # recent runs
servo logs RUN_ID
```

`vendor/servo` is a copy of Servo {version}, the version that created this project; the image runs it
with the dependencies pinned in `requirements.txt`. After upgrading Servo, replace both with those of
a fresh `servo init`.
"""


def requirements() -> str:
    """The running Servo's own runtime dependencies, pinned as it declares them (never a bare "servo")."""
    from importlib import metadata

    try:
        declared = metadata.requires("servo") or []
    except metadata.PackageNotFoundError:
        raise CliError(
            "cannot pin the worker's dependencies: the servo distribution is not installed"
        ) from None
    return "".join(f"{req}\n" for req in declared if "extra ==" not in req)


def _vendor(target: Path) -> None:
    """Copy the running servo package into ``target`` (what the worker image imports)."""
    import servo

    source = Path(servo.__file__).parent
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def namespace_for(name: str) -> str:
    """The asset namespace derived from a project name (``My-Project`` -> ``my_project``)."""
    ns = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    if not _NAMESPACE_RE.match(ns):
        raise CliError(
            f"cannot derive an asset namespace from {name!r}: "
            "use a name starting with a letter (e.g. my_project)"
        )
    return ns


def scaffold(target: Path) -> list[Path]:
    """Write a new project into ``target`` (which must not exist); returns the files written."""
    if target.exists():
        raise CliError(f"{target} already exists", hint="pick another NAME or remove it")
    name = target.name
    ns = namespace_for(name)
    files = {
        "servo.toml": SERVO_TOML.format(name=name),
        "assets/__init__.py": "",
        "assets/example.py": ASSETS.format(ns=ns),
        "Dockerfile": DOCKERFILE,
        "requirements.txt": requirements(),
        ".gitignore": GITIGNORE,
        "README.md": README.format(name=name, ns=ns, version=_servo_version()),
    }
    written = []
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    _vendor(target / "vendor" / "servo")
    written.append(target / "vendor" / "servo")
    return written


def _servo_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("servo")
    except metadata.PackageNotFoundError:
        return "(unknown version)"
