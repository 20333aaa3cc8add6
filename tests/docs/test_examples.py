"""Every example in docs/ (and each one the README marks) runs, as a reader would run it.

A page is one scenario in a fresh directory: its ``python file=PATH`` and ``toml file=PATH`` blocks are
written there first; its ``sh dev`` block (``servo dev``) is started in the background and awaited;
then its other ``sh`` blocks run in order as one bash script (``set -euo pipefail``), so a variable set
in one block serves the next. ``text`` blocks show output and are not examples. The environment points
``servo`` at a free port (SERVO_API_URL, SERVO_DEV_PORT), so pages never collide with a developer's stack.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
BIN = Path(sys.executable).parent
_FENCE = re.compile(r"^```([a-z]*)([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
RUNNABLE = {"python", "sh", "toml"}
DISPLAY = {"text"}


@dataclass(frozen=True)
class Block:
    lang: str
    attrs: dict[str, str]
    text: str
    line: int

    @property
    def where(self) -> str:
        return f"line {self.line}"


@dataclass
class Page:
    path: Path
    blocks: list[Block] = field(default_factory=list)

    def marked(self) -> list[Block]:
        """The README runs only what it marks; in docs/ every runnable block is an example."""
        if self.path.parent == DOCS:
            return [b for b in self.blocks if b.lang in RUNNABLE]
        return [b for b in self.blocks if b.lang in RUNNABLE and b.attrs]


def parse(path: Path) -> Page:
    page = Page(path)
    text = path.read_text(encoding="utf-8")
    for match in _FENCE.finditer(text):
        attrs: dict[str, str] = {}
        for word in match.group(2).split():
            name, _, value = word.partition("=")
            attrs[name] = value
        page.blocks.append(
            Block(match.group(1), attrs, match.group(3), text.count("\n", 0, match.start()) + 1)
        )
    return page


PAGES = [*sorted(DOCS.glob("*.md")), REPO / "README.md"]


def test_docs_exist_and_the_readme_links_them() -> None:
    assert (DOCS / "README.md").is_file()
    assert "docs/README.md" in (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name if p.parent == DOCS else "README")
def test_every_relative_link_resolves_to_a_file_in_the_repository(path: Path) -> None:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"^[a-z]+:", target):
            assert "example.invalid" not in target, target
            continue
        resolved = (path.parent / target).resolve()
        assert resolved.is_relative_to(REPO), f"{path.name} links outside the repository: {target}"
        assert resolved.exists(), f"{path.name} links to a missing file: {target}"


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_block_in_docs_is_an_example_or_output(path: Path) -> None:
    for block in parse(path).blocks:
        assert block.lang in RUNNABLE | DISPLAY, f"{path.name} {block.where}: fence language {block.lang!r}"
        if block.lang in ("python", "toml"):
            assert "file" in block.attrs, f"{path.name} {block.where}: a {block.lang} example needs file=PATH"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        SERVO_API_URL=f"http://127.0.0.1:{port}",
        SERVO_DEV_PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    return env


def _start_dev(block: Block, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        ["bash", "-c", block.text], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=log.open("w"),
        text=True, start_new_session=True,
    )  # fmt: skip
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Servo API ready at "):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(90):
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"`{block.text.strip()}` did not get ready: {log.read_text()[-2000:]}")
    return proc


@pytest.mark.e2e
@pytest.mark.parametrize(
    "path",
    [p for p in PAGES if parse(p).marked()],
    ids=lambda p: p.name if p.parent == DOCS else "README",
)
def test_the_examples_of_a_page_run(path: Path, tmp_path: Path) -> None:
    blocks = parse(path).marked()
    work = tmp_path / "work"
    work.mkdir()
    for block in blocks:
        if "file" in block.attrs:
            target = work / block.attrs["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text, encoding="utf-8")
    env = _env(_free_port())
    dev_blocks = [b for b in blocks if b.lang == "sh" and "dev" in b.attrs]
    assert len(dev_blocks) <= 1, f"{path.name}: at most one `sh dev` block"
    dev = _start_dev(dev_blocks[0], work, env, tmp_path / "dev.log") if dev_blocks else None
    script = "set -euo pipefail\n" + "\n".join(
        f"# {path.name} {b.where}\n{b.text}" for b in blocks if b.lang == "sh" and "dev" not in b.attrs
    )
    try:
        done = subprocess.run(
            ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )
    finally:
        if dev is not None:
            os.killpg(dev.pid, signal.SIGTERM)
            dev.wait(30)
    assert done.returncode == 0, (
        f"{path.name}:\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )
