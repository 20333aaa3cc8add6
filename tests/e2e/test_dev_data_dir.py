"""`servo dev` and its data directory, as real processes: where it lives, and that one stack owns it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SERVO = str(Path(sys.executable).with_name("servo"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def _dev(*args: str, cwd: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """A `servo dev` in the background; yields it and its stdout lines once it is ready."""
    proc = subprocess.Popen(
        [SERVO, "dev", "--port", str(_free_port()), *args],
        cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Servo API ready at "):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(60), f"servo dev did not get ready: {lines}"
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def _init(root: Path) -> Path:
    done = subprocess.run([SERVO, "init", "proj"], cwd=root, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return root / "proj"


def test_the_data_directory_of_servo_toml_is_relative_to_the_project(tmp_path: Path) -> None:
    project = _init(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with _dev("--project", str(project), cwd=elsewhere) as (_, lines):
        expected = project / ".servo-dev" / "data"
        assert f"Data directory {expected}" in lines  # said before anything else happens
        assert expected.is_dir()
    assert not (elsewhere / ".servo-dev").exists()


def test_a_second_dev_on_the_same_data_directory_is_refused_and_kill_9_leaves_no_stale_lock(
    tmp_path: Path,
) -> None:
    project = _init(tmp_path)
    data = tmp_path / "data"
    with _dev("--project", str(project), "--data", str(data), cwd=tmp_path) as (first, _):
        second = subprocess.run(
            [SERVO, "dev", "--port", str(_free_port()), "--project", str(project), "--data", str(data)],
            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode != 0
        assert f"data directory {data} is in use by another `servo dev` (pid {first.pid})" in second.stderr
        assert "Servo API ready" not in second.stdout
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    # The lock died with the process: a new stack starts on the same directory.
    with _dev("--project", str(project), "--data", str(data), cwd=tmp_path) as (third, _):
        assert third.poll() is None


def test_data_an_earlier_servo_wrote_is_upgraded_to_plain_files_at_start(tmp_path: Path) -> None:
    project = _init(tmp_path)
    data = tmp_path / "data"
    legacy = data / "servo-local" / "default" / "default" / "notes" / "kept.json%o"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"SVO1" + (3).to_bytes(8, "big") + b'{"kept": true}')
    with _dev("--project", str(project), "--data", str(data), cwd=tmp_path) as (_, lines):
        assert f"Upgraded 1 objects of {data / 'servo-local'} to plain files" in lines
    assert (legacy.parent / "kept.json").read_bytes() == b'{"kept": true}'
    assert not legacy.exists()
