"""A scriptable worker that speaks the worker protocol (contracts §10) over real HTTP.

Each asset's behaviour comes from a file ``{behaviour_dir}/{task_key}.json`` read at dispatch time:

- ``{"fail_times": N}``      attempts 1..N complete FAILED (USER_CODE, retryable), later ones SUCCEEDED;
- ``{"always_fail": true}``  every attempt completes FAILED with ``retryable: false``;
- ``{"run_s": S}``           heartbeats for S seconds, stopping early (CANCELLED) on ``shouldCancel``;
- ``{"silent_attempts": N}`` attempts 1..N send ``started`` and then nothing at all (a crashed worker).

No file means: succeed at once. Every dispatch received is recorded, so a test can say exactly which
task attempts reached the worker and when.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from flask import Flask, request
from werkzeug.serving import BaseWSGIServer, make_server


@dataclass(frozen=True, slots=True)
class Dispatch:
    task_key: str
    run_id: str
    attempt: int
    received_ms: int


@dataclass
class ProtocolWorker:
    behaviour_dir: Path
    dispatch_secret: str
    heartbeat_s: float = 0.3
    dispatches: list[Dispatch] = field(default_factory=list)
    outcomes: list[tuple[str, int, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: BaseWSGIServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> ProtocolWorker:
        app = Flask("protocol-worker")

        @app.post("/dispatch")
        def dispatch() -> tuple[str, int]:
            if request.headers.get("X-Servo-Dispatch-Secret") != self.dispatch_secret:
                return "bad secret", 401
            envelope = request.get_json(force=True)
            with self._lock:
                self.dispatches.append(
                    Dispatch(envelope["taskKey"], envelope["runId"], envelope["attempt"], _now_ms())
                )
            threading.Thread(target=self._run, args=(envelope,), daemon=True).start()
            return "", 204

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def dispatched(self, run_id: str) -> list[Dispatch]:
        with self._lock:
            return [d for d in self.dispatches if d.run_id == run_id]

    def _behaviour(self, task_key: str) -> dict[str, Any]:
        path = self.behaviour_dir / f"{task_key}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _run(self, env: dict[str, Any]) -> None:
        base = f"{env['callbackBaseUrl']}/api/v1/tasks/{env['taskId']}"
        auth = {"Authorization": f"Bearer {env['taskToken']}"}
        ident = {"attempt": env["attempt"], "attemptId": env["attemptId"], "workerId": "protocol-worker"}

        def post(action: str, **extra: Any) -> requests.Response:
            return requests.post(f"{base}/{action}", json={**ident, **extra}, headers=auth, timeout=30)

        if post("started").status_code == 409:
            return
        spec = self._behaviour(env["taskKey"])
        attempt = int(env["attempt"])
        if attempt <= int(spec.get("silent_attempts", 0)):
            return
        outcome = "SUCCEEDED"
        extra: dict[str, Any] = {"output": {"rowCount": attempt}}
        deadline = time.monotonic() + float(spec.get("run_s", 0))
        while time.monotonic() < deadline:
            time.sleep(self.heartbeat_s)
            beat = post("heartbeat", progressPct=0)
            if beat.ok and beat.json().get("shouldCancel"):
                outcome, extra = "CANCELLED", {"cancelledDuringPhase": "executing"}
                break
        if spec.get("always_fail") or attempt <= int(spec.get("fail_times", 0)):
            retryable = not spec.get("always_fail")
            message = f"scripted failure of attempt {attempt}"
            error = {"category": "USER_CODE", "message": message, "retryable": retryable}
            outcome, extra = "FAILED", {"error": error}
        reply = post("completed", outcome=outcome, **extra)
        with self._lock:
            self.outcomes.append((env["taskKey"], attempt, f"{outcome}:{reply.status_code}"))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
