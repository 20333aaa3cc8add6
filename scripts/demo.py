"""`make demo`: the quickstart end to end through the real `servo` CLI, then a clean stop.

Starts `servo dev` on a free port with a throwaway data dir, deploys examples/quickstart, runs
demo.a with its downstream and waits, shows status and logs, stops the stack and exits 0.
Every step is a separate `servo` process, exactly as a user would type it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "examples" / "quickstart"
SERVO = str(Path(sys.executable).with_name("servo"))
READY_TIMEOUT_S = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _banner(text: str) -> None:
    line = f"==> {text}"
    print("\n" + (f"\033[1m{line}\033[0m" if sys.stdout.isatty() else line), flush=True)


def _servo(env: dict[str, str], *args: str, capture: bool = False) -> str:
    _banner("servo " + " ".join(args))
    done = subprocess.run(
        [SERVO, *args], cwd=PROJECT, env=env, text=True, capture_output=capture, timeout=120
    )
    if capture:
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"demo failed: `servo {' '.join(args)}` exited {done.returncode}")
    return done.stdout or ""


def _wait_ready(proc: subprocess.Popen[str]) -> str:
    found: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Servo API ready at "):
                found.append(line.split(" at ", 1)[1].strip())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(READY_TIMEOUT_S)
    if not found:
        raise SystemExit(f"demo failed: `servo dev` was not ready within {READY_TIMEOUT_S}s")
    return found[0]


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="servo-demo-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVO_")}
    env["SERVO_API_URL"] = f"http://127.0.0.1:{port}"
    dev_log = workdir / "servo-dev.log"
    _banner(f"servo dev --port {port} --data {workdir / 'data'}   (in the background)")
    with dev_log.open("w") as log:
        dev = subprocess.Popen(
            [SERVO, "dev", "--port", str(port), "--data", str(workdir / "data"), "--project", str(PROJECT)],
            cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        try:
            print(f"Servo API ready at {_wait_ready(dev)}")
            _servo(env, "validate")
            _servo(env, "deploy")
            shown = _servo(env, "run", "demo.a", "--include-downstream", "--wait", capture=True)
            found = re.search(r"Created run (\S+)", shown)
            if found is None:
                raise SystemExit("demo failed: `servo run` did not print the run id")
            run_id = found.group(1)
            _servo(env, "status", run_id)
            _servo(env, "logs", run_id)
            _servo(env, "status")
        finally:
            _banner("stopping servo dev")
            dev.send_signal(signal.SIGTERM)
            try:
                code = dev.wait(20)
            except subprocess.TimeoutExpired:
                dev.kill()
                code = -1
    if code != 0:
        sys.stderr.write(dev_log.read_text()[-3000:])
        raise SystemExit(f"demo failed: `servo dev` exited {code}")
    shutil.rmtree(workdir, ignore_errors=True)
    _banner("done: deployed the quickstart, ran demo.a -> demo.b -> demo.c (SUCCEEDED), stack stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
