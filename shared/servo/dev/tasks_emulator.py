"""A Cloud Tasks emulator fixed for Servo: ``gcloud-tasks-emulator``'s gRPC surface on our delivery engine.

``gcloud-tasks-emulator`` 0.6.2 speaks the Cloud Tasks gRPC API but, as shipped (local-stack.md), delivers a
duplicate name twice, hammers a failing task every ~100 ms forever, runs one task at a time per queue, has no
request timeout, lacks GetTask/DeleteTask and binds every interface. Here its queue state and servicer are
subclassed so that task storage and delivery go through ``servo.dispatch``'s engine instead:

- task names are unique per queue and tombstoned after delivery or deletion → ALREADY_EXISTS;
- retries back off exponentially per the queue's ``retry_config`` (attempts bounded even when it says -1);
- each queue has a pool of delivery workers (``rate_limits.max_concurrent_dispatches`` or the default);
- every request is bounded by the task's ``dispatch_deadline`` (default 10 min);
- the server binds a loopback address only; queues are created on first use or by CreateQueue;
- ``max_tasks_per_queue`` makes CreateTask answer RESOURCE_EXHAUSTED, to test throttling.

Run it as ``python -m servo.dev.tasks_emulator --host 127.0.0.1 --port P`` (stops cleanly on SIGTERM) or
in process as ``with TasksEmulator() as emu: ... emu.address``. OIDC tokens are accepted but not attached to
deliveries: nothing local can mint a Google-signed token.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent import futures
from typing import Any

import grpc
from gcloud_tasks_emulator.cloudtasks_pb2_grpc import add_CloudTasksServicer_to_server
from gcloud_tasks_emulator.server import Greeter, QueueState
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.protobuf import duration_pb2, empty_pb2, timestamp_pb2

from servo.core.errors import InvalidInput
from servo.dispatch._engine import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOMBSTONE_S,
    DEFAULT_WORKERS,
    Delivery,
    DeliveryEngine,
    Full,
    RedeliveryPolicy,
    Snapshot,
    Stopped,
)

logger = logging.getLogger(__name__)

_QUEUE_NAME_RE = re.compile(r"projects/[^/]+/locations/[^/]+/queues/[A-Za-z0-9-]{1,100}")
_TASK_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,500}")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_MAX_WORKERS = 64


def _seconds(d: duration_pb2.Duration) -> float:
    return d.seconds + d.nanos / 1e9


def _timestamp(epoch_s: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(epoch_s * 1e9))
    return ts


class FixedQueueState(QueueState):
    """Queue metadata in the base class's ``_queues``; tasks live in a ``DeliveryEngine``."""

    def __init__(self, engine: DeliveryEngine, default: RedeliveryPolicy, max_attempts_cap: int) -> None:
        super().__init__(target_host="127.0.0.1", target_port=0, max_retries=-1)
        self._engine = engine
        self._default = default
        self._cap = max_attempts_cap
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------------ queues

    def create_queue(self, parent: str | None, queue: tasks_v2.Queue) -> tasks_v2.Queue:
        with self._lock:
            if not _QUEUE_NAME_RE.fullmatch(queue.name):
                raise gexc.InvalidArgument(f"invalid queue name {queue.name!r}")
            if queue.name in self._queues:
                raise gexc.AlreadyExists(f"queue {queue.name} already exists")
            return self._install(queue, new=True)

    def update_queue(self, queue: tasks_v2.Queue) -> tasks_v2.Queue:
        with self._lock:
            if queue.name not in self._queues:
                return self.create_queue(None, queue)
            return self._install(queue, new=False)

    def _install(self, queue: tasks_v2.Queue, *, new: bool) -> tasks_v2.Queue:
        policy = self._policy(queue.retry_config)
        pb = queue.rate_limits._pb
        workers = min(pb.max_concurrent_dispatches or DEFAULT_WORKERS, _MAX_WORKERS)
        effective = tasks_v2.Queue(name=queue.name, state=tasks_v2.Queue.State.RUNNING)
        effective.rate_limits.max_concurrent_dispatches = workers
        retry = effective.retry_config._pb
        retry.max_attempts = policy.max_attempts
        retry.min_backoff.FromNanoseconds(int(policy.min_backoff_s * 1e9))
        retry.max_backoff.FromNanoseconds(int(policy.max_backoff_s * 1e9))
        retry.max_doublings = policy.max_doublings
        self._engine.configure_queue(queue.name, policy=policy, workers=workers if new else None)
        self._queues[queue.name] = effective
        logger.info("queue %s ready (%d workers, %s)", queue.name, workers, policy)
        return effective

    def _policy(self, config: tasks_v2.RetryConfig) -> RedeliveryPolicy:
        pb = config._pb
        d = self._default
        attempts = pb.max_attempts or d.max_attempts
        # -1 means "unlimited" on Cloud Tasks; locally a failing handler must not be hammered forever.
        attempts = self._cap if attempts < 0 else min(attempts, self._cap)
        min_b = _seconds(pb.min_backoff) if pb.HasField("min_backoff") else d.min_backoff_s
        max_b = _seconds(pb.max_backoff) if pb.HasField("max_backoff") else max(d.max_backoff_s, min_b)
        duration = _seconds(pb.max_retry_duration) if pb.HasField("max_retry_duration") else 0.0
        try:
            return RedeliveryPolicy(
                max_attempts=attempts,
                min_backoff_s=min_b,
                max_backoff_s=max_b,
                max_doublings=pb.max_doublings or d.max_doublings,
                max_retry_duration_s=duration or None,
            )
        except InvalidInput as exc:
            raise gexc.InvalidArgument(str(exc)) from exc

    def _ensure(self, name: str) -> None:
        with self._lock:
            if name not in self._queues:
                self.create_queue(None, tasks_v2.Queue(name=name))

    def queue(self, name: str) -> tasks_v2.Queue:
        with self._lock:
            if name not in self._queues:
                raise gexc.NotFound(f"queue {name} does not exist")
            return self._queues[name]

    def queues(self) -> list[tasks_v2.Queue]:
        with self._lock:
            return list(self._queues.values())

    def queue_names(self) -> list[str]:
        with self._lock:
            return list(self._queues)

    def delete_queue(self, name: str) -> None:
        with self._lock:
            self.queue(name)
            del self._queues[name]
            self._engine.drop_queue(name)

    def purge_queue(self, queue_name: str) -> tasks_v2.Queue:
        q = self.queue(queue_name)
        self._engine.purge(queue_name)
        return q

    def pause_queue(self, queue_name: str) -> tasks_v2.Queue:
        return self._set_paused(queue_name, True)

    def resume_queue(self, queue_name: str) -> tasks_v2.Queue:
        return self._set_paused(queue_name, False)

    def _set_paused(self, name: str, paused: bool) -> tasks_v2.Queue:
        with self._lock:
            q = self.queue(name)
            state = tasks_v2.Queue.State.PAUSED if paused else tasks_v2.Queue.State.RUNNING
            q._pb.state = int(state)
            self._engine.set_paused(name, paused)
            return q

    # ------------------------------------------------------------------------------------------ tasks

    def create_task(self, queue: str, task: tasks_v2.Task) -> tasks_v2.Task:
        if not _QUEUE_NAME_RE.fullmatch(queue):
            raise gexc.InvalidArgument(f"invalid queue name {queue!r}")
        pb = task._pb
        if not pb.http_request.url:
            raise gexc.InvalidArgument("only HTTP tasks (http_request.url) are supported")
        if pb.name:
            prefix, _, task_id = pb.name.rpartition("/tasks/")
            if prefix != queue or not _TASK_ID_RE.fullmatch(task_id):
                raise gexc.InvalidArgument(f"task name {pb.name!r} is not a task of {queue}")
        else:
            pb.name = f"{queue}/tasks/{uuid.uuid4().int % 10**19}"
        self._ensure(queue)
        now = time.time()
        due = pb.schedule_time.ToNanoseconds() / 1e9 if pb.HasField("schedule_time") else now
        pb.schedule_time.CopyFrom(_timestamp(due))
        pb.create_time.CopyFrom(_timestamp(now))
        deadline = _seconds(pb.dispatch_deadline) if pb.HasField("dispatch_deadline") else DEFAULT_TIMEOUT_S
        method = tasks_v2.HttpMethod(pb.http_request.http_method or tasks_v2.HttpMethod.POST)
        pb.http_request.http_method = method.value
        delivery = Delivery(
            queue=queue,
            name=pb.name.rpartition("/")[2],
            url=pb.http_request.url,
            body=pb.http_request.body,
            headers=dict(pb.http_request.headers),
            method=method.name,
            due_s=due,
            timeout_s=deadline if deadline > 0 else DEFAULT_TIMEOUT_S,
            queue_label=queue.rpartition("/")[2],
            meta=task,
        )
        try:
            created = self._engine.submit(delivery)
        except Full as exc:
            raise gexc.ResourceExhausted(str(exc)) from exc
        except Stopped as exc:
            raise gexc.ServiceUnavailable(str(exc)) from exc
        if not created:
            raise gexc.AlreadyExists(f"task {pb.name} already exists or existed recently")
        return task

    def list_tasks(self, queue_name: str) -> list[tasks_v2.Task]:
        self.queue(queue_name)
        return [_as_task(s) for s in self._engine.list(queue_name)]

    def get_task(self, name: str) -> tasks_v2.Task:
        queue, _, task_id = name.rpartition("/tasks/")
        snapshot = self._engine.get(queue, task_id)
        if snapshot is None:
            raise gexc.NotFound(f"task {name} does not exist")
        return _as_task(snapshot)

    def delete_task(self, name: str) -> None:
        queue, _, task_id = name.rpartition("/tasks/")
        if not self._engine.delete(queue, task_id):
            raise gexc.NotFound(f"task {name} does not exist")

    def submit_task(self, task_name: str, force_run: bool = False) -> tasks_v2.Task:
        raise gexc.MethodNotImplemented("RunTask is not supported by this emulator")


def _as_task(snapshot: Snapshot) -> tasks_v2.Task:
    out = tasks_v2.Task()
    out._pb.CopyFrom(snapshot.delivery.meta._pb)
    out._pb.dispatch_count = snapshot.attempts
    return out


class FixedServicer(Greeter):
    """The base servicer plus GetTask and DeleteTask."""

    def __init__(self, state: FixedQueueState) -> None:
        super().__init__(state)
        self._fixed = state

    def GetTask(self, request: tasks_v2.GetTaskRequest, context: grpc.ServicerContext) -> Any:
        try:
            return self._fixed.get_task(request.name)
        except gexc.GoogleAPICallError as err:
            context.abort(err.grpc_status_code, err.message)

    def DeleteTask(self, request: tasks_v2.DeleteTaskRequest, context: grpc.ServicerContext) -> Any:
        try:
            self._fixed.delete_task(request.name)
            return empty_pb2.Empty()
        except gexc.GoogleAPICallError as err:
            context.abort(err.grpc_status_code, err.message)


class TasksEmulator:
    """The fixed emulator in this process, as a context manager.

    Args:
        host: a loopback address; the emulator has no authentication, so nothing else is allowed.
        port: the port, 0 for a free one (see ``address``).
        workers_per_queue: delivery workers of a queue whose rate limits do not say otherwise.
        policy: redelivery defaults for fields a queue's ``retry_config`` leaves unset.
        max_attempts_cap: upper bound on any queue's attempts (Cloud Tasks' -1 = unlimited included).
        tombstone_s: how long a finished task name answers ALREADY_EXISTS.
        max_tasks_per_queue: live tasks a queue holds before CreateTask answers RESOURCE_EXHAUSTED.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        workers_per_queue: int = DEFAULT_WORKERS,
        policy: RedeliveryPolicy | None = None,
        max_attempts_cap: int = 100,
        tombstone_s: float = DEFAULT_TOMBSTONE_S,
        max_tasks_per_queue: int | None = None,
    ) -> None:
        if host not in _LOOPBACK:
            raise InvalidInput(f"the tasks emulator binds loopback only, got host {host!r}")
        self._host = host
        self._port = port
        self._engine = DeliveryEngine(
            workers_per_queue=workers_per_queue,
            policy=policy,
            tombstone_s=tombstone_s,
            max_live_per_queue=max_tasks_per_queue,
        )
        self.state = FixedQueueState(self._engine, policy or RedeliveryPolicy(), max_attempts_cap)
        self._server: grpc.Server | None = None
        self._bound: int | None = None

    @property
    def address(self) -> str:
        """``host:port`` for ``cloud_tasks_client`` / ``SERVO_TASKS_EMULATOR_HOST``."""
        if self._bound is None:
            raise InvalidInput("the tasks emulator is not running")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self._bound}"

    def start(self) -> TasksEmulator:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="tasks-emulator"))
        add_CloudTasksServicer_to_server(FixedServicer(self.state), server)
        host = f"[{self._host}]" if ":" in self._host else self._host
        try:
            bound = server.add_insecure_port(f"{host}:{self._port}")
        except RuntimeError as exc:
            raise InvalidInput(f"cannot bind the tasks emulator to {host}:{self._port}: {exc}") from exc
        if not bound:
            raise InvalidInput(f"cannot bind the tasks emulator to {host}:{self._port}")
        self._engine.start()
        server.start()
        self._server, self._bound = server, bound
        return self

    def stop(self, grace: float = 1.0) -> None:
        """Stop answering, let in-flight deliveries finish (bounded by ``grace`` + a few seconds)."""
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        self._engine.stop(grace + 5.0)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self._engine.wait_idle(timeout)

    def __enter__(self) -> TasksEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servo.dev.tasks_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=9022, help="port (0 = any free port)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="delivery workers per queue")
    parser.add_argument("--max-attempts", type=int, default=20, help="default attempts per task")
    parser.add_argument(
        "--max-attempts-cap", type=int, default=100, help="upper bound on any queue's attempts"
    )
    parser.add_argument("--min-backoff", type=float, default=0.1, help="default first retry delay, seconds")
    parser.add_argument("--max-backoff", type=float, default=10.0, help="default retry delay cap, seconds")
    parser.add_argument("--tombstone-seconds", type=float, default=DEFAULT_TOMBSTONE_S)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        emulator = TasksEmulator(
            args.host,
            args.port,
            workers_per_queue=args.workers,
            policy=RedeliveryPolicy(
                max_attempts=args.max_attempts,
                min_backoff_s=args.min_backoff,
                max_backoff_s=args.max_backoff,
            ),
            max_attempts_cap=args.max_attempts_cap,
            tombstone_s=args.tombstone_seconds,
        ).start()
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # The address line is the readiness signal for whoever started the process.
    print(f"servo tasks emulator listening on {emulator.address}", flush=True)
    stopping.wait()
    emulator.stop()
    logger.info("tasks emulator stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
