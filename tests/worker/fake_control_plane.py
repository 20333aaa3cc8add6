"""A fake control plane for worker tests: a real Flask app on 127.0.0.1, served from a thread.

It records every callback (action, task id, body, headers) in arrival order and answers the contract's
200 bodies by default; a test programs other answers per action with ``on(action, handler)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

SERVER_TIME = "2026-01-01T00:00:00Z"

Answer = tuple[int, dict[str, Any]] | None
Handler = Callable[["Call", int], Answer]


@dataclass(frozen=True)
class Call:
    action: str
    task_id: str
    body: dict[str, Any]
    authorization: str | None
    at: float


def _default(call: Call) -> tuple[int, dict[str, Any]]:
    if call.action == "heartbeat":
        return 200, {"acknowledged": True, "shouldCancel": False, "serverTime": SERVER_TIME}
    if call.action == "completed":
        return 200, {"acknowledged": True, "finalState": call.body.get("outcome"), "serverTime": SERVER_TIME}
    return 200, {"acknowledged": True, "serverTime": SERVER_TIME}


class FakeControlPlane:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        app = Flask("fake-control-plane")

        @app.post("/api/v1/tasks/<task_id>/<action>")
        def callback(task_id: str, action: str) -> Any:
            call = Call(
                action,
                task_id,
                request.get_json(force=True),
                request.headers.get("Authorization"),
                time.time(),
            )
            with self._lock:
                self.calls.append(call)
                count = sum(1 for c in self.calls if c.action == action and c.task_id == task_id)
                handler = self._handlers.get(action)
                self._changed.notify_all()
            answer = handler(call, count) if handler is not None else None
            status, body = answer if answer is not None else _default(call)
            return jsonify(body), status

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeControlPlane:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()

    def on(self, action: str, handler: Handler) -> None:
        """Answer ``action`` with ``handler(call, nth_call_for_this_task)``; None = the default answer."""
        self._handlers[action] = handler

    def actions(self, task_id: str | None = None) -> list[str]:
        with self._lock:
            return [c.action for c in self.calls if task_id is None or c.task_id == task_id]

    def of(self, action: str, task_id: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.action == action and (task_id is None or c.task_id == task_id)]

    def output(self, task_id: str | None = None) -> str:
        """The output the worker streamed (``logs`` chunks), joined in ``seq`` order."""
        chunks = sorted((c.body["seq"], c.body["text"]) for c in self.of("logs", task_id))
        return "".join(text for _, text in chunks)

    def wait_for(self, action: str, count: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while sum(1 for c in self.calls if c.action == action) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {count}x {action} within {timeout}s: {self.calls}")
                self._changed.wait(left)
