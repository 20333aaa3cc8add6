"""Measuring without touching product code: a per-prefix tally at the ObjectStore port, and a worker
whose edges are timestamped (envelope received; callback sent and answered), over HTTP or in process.

Timestamps are ``time.perf_counter()`` of this process: the bench runs the worker (and, in embedded
mode, the control plane) in-process, so every clock read is the same clock.
"""

from __future__ import annotations

import builtins
import json
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from servo.dispatch import InboundRequest, Reply, Transport
from servo.store import DEFAULT_CONTENT_TYPE, ObjectMeta, ObjectStore, StoredObject
from servo.worker import WorkerApp


def prefix_of(name: str) -> str:
    """``ledger``, ``logs``, ``run_keys``, ``manifests`` … or ``state/<part>`` for a bucket-root name."""
    parts = name.split("/")
    if len(parts) < 3:
        return name
    if parts[2] == "state" and len(parts) > 4:
        return f"state/{parts[4]}"
    return parts[2]


class PrefixTally:
    """An ObjectStore that tallies each operation by object-name prefix before passing it on.

    Also remembers when each ``RunTriggered`` ledger object was created, for the compaction lag. The
    tally runs on the stack's own threads, inside the CPU window the bench charges to the stack, so a
    ledger object is only kept as written (with its time) and read for its type when someone asks.
    """

    def __init__(self, inner: ObjectStore) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.ops: Counter[tuple[str, str]] = Counter()
        self._ledger_types: Counter[str] = Counter()  # event_type of each ledger object written
        self._triggered_at: dict[str, float] = {}
        self._unread: list[tuple[bytes, float]] = []  # ledger objects written, not yet read

    def reset(self) -> None:
        with self._lock:
            self._read_written()
            self.ops.clear()
            self._ledger_types.clear()

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.ops)

    def ledger_snapshot(self) -> dict[str, int]:
        with self._lock:
            self._read_written()
            return dict(self._ledger_types)

    @property
    def run_triggered_at(self) -> dict[str, float]:
        with self._lock:
            self._read_written()
            return dict(self._triggered_at)

    def _read_written(self) -> None:
        for data, at in self._unread:
            event = json.loads(data)
            self._ledger_types[str(event.get("event_type"))] += 1
            if event.get("event_type") == "RunTriggered":
                self._triggered_at.setdefault(event["data"]["run_id"], at)
        self._unread.clear()

    def _add(self, op: str, name: str) -> None:
        with self._lock:
            self.ops[(prefix_of(name), op)] += 1

    def get(self, name: str) -> StoredObject | None:
        self._add("read", name)
        return self._inner.get(name)

    def create(self, name: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> int:
        self._add("write", name)
        generation = self._inner.create(name, data, content_type=content_type)
        if "/ledger/" in name:
            at = time.perf_counter()
            with self._lock:
                self._unread.append((data, at))
        return generation

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> int:
        self._add("write", name)
        return self._inner.put(name, data, if_generation_match=if_generation_match, content_type=content_type)

    def list(
        self,
        prefix: str,
        *,
        start_offset: str | None = None,
        end_offset: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[ObjectMeta]:
        self._add("list", prefix if prefix.endswith("/") else prefix + "/")
        return self._inner.list(prefix, start_offset=start_offset, end_offset=end_offset, limit=limit)

    def delete(self, name: str, *, if_generation_match: int | None = None) -> bool:
        self._add("write", name)
        return self._inner.delete(name, if_generation_match=if_generation_match)


@dataclass
class TaskTimes:
    """One task attempt as the worker saw it (perf_counter seconds)."""

    run_id: str
    task_key: str
    received: float
    completed_sent: float | None = None
    completed_accepted: float | None = None


class Timeline:
    """What the timed worker observed, keyed by task id; waiters block until N completions were accepted."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self.tasks: dict[str, TaskTimes] = {}
        self._accepted: Counter[str] = Counter()

    def received(self, task_id: str, run_id: str, task_key: str) -> None:
        now = time.perf_counter()
        with self._cv:
            self.tasks.setdefault(task_id, TaskTimes(run_id, task_key, now))

    def completed(self, task_id: str, sent: float, accepted: float) -> None:
        with self._cv:
            times = self.tasks.get(task_id)
            if times is None or times.completed_accepted is not None:
                return
            times.completed_sent, times.completed_accepted = sent, accepted
            self._accepted[times.run_id] += 1
            self._cv.notify_all()

    def wait_completed(self, run_id: str, count: int, timeout: float) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self._accepted[run_id] >= count, timeout)

    def of_run(self, run_id: str) -> dict[str, TaskTimes]:
        with self._cv:
            return {t.task_key: t for t in self.tasks.values() if t.run_id == run_id}


class TimedTransport:
    """The worker's callback transport: stamps when ``completed`` was sent and when a 2xx came back."""

    def __init__(self, inner: Transport, timeline: Timeline) -> None:
        self._inner = inner
        self._timeline = timeline

    def deliver(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, *, timeout_s: float
    ) -> Reply:
        sent = time.perf_counter()
        reply = self._inner.deliver(method, url, headers, body, timeout_s=timeout_s)
        if url.endswith("/completed") and 200 <= reply.status < 300:
            task_id = unquote(url.rsplit("/", 2)[-2])
            self._timeline.completed(task_id, sent, time.perf_counter())
        return reply


class TimedWorkerApp(WorkerApp):
    """The real worker app, with the arrival of each dispatch envelope stamped before it is handled
    (over HTTP and in process alike: both reach ``serve``)."""

    timeline: Timeline

    def serve(self, request: InboundRequest) -> Reply:
        if request.path == "/dispatch" and request.method == "POST":
            try:
                body = json.loads(request.body)
                task_id = body.get("taskId") or body.get("callbackTaskId") or body["taskKey"]
                self.timeline.received(str(task_id), str(body["runId"]), str(body["taskKey"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                pass  # the app itself answers a malformed envelope
        return super().serve(request)
