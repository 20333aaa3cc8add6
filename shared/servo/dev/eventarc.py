"""Eventarc stand-in: a Pub/Sub Publisher gRPC endpoint that turns GCS notifications into CloudEvents.

fake-gcs-server can only notify through Pub/Sub, and no Pub/Sub emulator installs without ``gcloud``
(local-stack.md). So we speak just enough of the Publisher API (CreateTopic, GetTopic, Publish) for
fake-gcs-server's client, and deliver each finalize notification the way Eventarc would: a binary-mode
CloudEvent ``google.cloud.storage.object.v1.finalized`` POSTed to the compactor, asynchronously and
at-least-once (bounded retries with backoff; a delivery that never succeeds is dropped and logged,
which is what the timers sweep's compaction re-kick exists for).

Run in-process (``EventarcBridge``) or as ``python -m servo.dev.eventarc --target URL --port P``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import grpc
import requests
from google.pubsub_v1 import types

logger = logging.getLogger("servo.dev.eventarc")

FINALIZED = "google.cloud.storage.object.v1.finalized"
LEDGER_FILTER = "/ledger/orchestration/"
_SERVICE = "google.pubsub.v1.Publisher"
# fake-gcs-server's attribute for an upload; only finalize notifications become events.
_GCS_FINALIZE = "OBJECT_FINALIZE"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One CloudEvent to POST: binary mode, so the headers carry the attributes and the body the object."""

    headers: dict[str, str]
    body: bytes


def to_cloud_event(message: types.PubsubMessage, event_id: str) -> Delivery | None:
    """The Eventarc CloudEvent for a GCS notification, or None if it is not an object finalize."""
    attrs = dict(message.attributes)
    if attrs.get("eventType", _GCS_FINALIZE) != _GCS_FINALIZE:
        return None
    bucket, name = attrs.get("bucketId"), attrs.get("objectId")
    if not bucket or not name:
        return None
    event_time = attrs.get("eventTime") or datetime.now(UTC).isoformat().replace("+00:00", "Z")
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": FINALIZED,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-subject": f"objects/{name}",
        "ce-time": event_time,
        "Content-Type": "application/json",
    }
    return Delivery(headers, bytes(message.data))


class EventarcBridge:
    """Publisher gRPC server + CloudEvent poster, as a context manager.

    Args:
        target_url: where CloudEvents are POSTed (the compactor function).
        name_filter: only objects whose name contains this string become events (Eventarc's path filter).
        max_attempts: delivery attempts per event before it is dropped.
        backoff_s: first retry delay; doubles per attempt up to ``max_backoff_s``.
    """

    def __init__(
        self,
        target_url: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name_filter: str = LEDGER_FILTER,
        max_attempts: int = 8,
        backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
        delivery_threads: int = 4,
        timeout_s: float = 60.0,
    ) -> None:
        self.target_url = target_url
        self._host = host
        self._port = port
        self._filter = name_filter
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._timeout_s = timeout_s
        self._pool = futures.ThreadPoolExecutor(delivery_threads, thread_name_prefix="eventarc-post")
        self._server: grpc.Server | None = None
        self._ids = itertools.count(1)
        self._topics: dict[str, types.Topic] = {}
        self._cv = threading.Condition()
        self._in_flight = 0
        self._stopping = threading.Event()
        self.delivered = 0
        self.dropped = 0
        self.filtered = 0

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` — the value for ``PUBSUB_EMULATOR_HOST``."""
        return f"{self._host}:{self._port}"

    def start(self) -> EventarcBridge:
        server = grpc.server(futures.ThreadPoolExecutor(8, thread_name_prefix="eventarc-grpc"))
        handlers = {
            "CreateTopic": _unary(self._create_topic, types.Topic),
            "GetTopic": _unary(self._get_topic, types.GetTopicRequest),
            "Publish": _unary(self._publish, types.PublishRequest),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, handlers),))
        self._port = server.add_insecure_port(f"{self._host}:{self._port}")
        server.start()
        self._server = server
        return self

    def _create_topic(self, topic: types.Topic, context: grpc.ServicerContext) -> types.Topic:
        if topic.name in self._topics:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"topic {topic.name} exists")
        self._topics[topic.name] = topic
        return topic

    def _get_topic(self, request: types.GetTopicRequest, context: grpc.ServicerContext) -> types.Topic:
        # Any topic exists: the bridge serves whichever topic fake-gcs-server was told to publish to.
        return self._topics.setdefault(request.topic, types.Topic(name=request.topic))

    def _publish(self, request: types.PublishRequest, context: grpc.ServicerContext) -> types.PublishResponse:
        ids = []
        for message in request.messages:
            event_id = str(next(self._ids))
            ids.append(event_id)
            delivery = to_cloud_event(message, event_id)
            subject = delivery.headers["ce-subject"] if delivery else ""
            if delivery is None or self._filter not in subject:
                self.filtered += 1
                continue
            with self._cv:
                self._in_flight += 1
            self._pool.submit(self._deliver, delivery)
        return types.PublishResponse(message_ids=ids)

    def _deliver(self, delivery: Delivery) -> None:
        try:
            delay = self._backoff_s
            for attempt in range(1, self._max_attempts + 1):
                error = self._post(delivery)
                if error is None:
                    self.delivered += 1
                    return
                if attempt == self._max_attempts or self._stopping.wait(delay):
                    break
                delay = min(delay * 2, self._max_backoff_s)
            self.dropped += 1
            if self._stopping.is_set():
                # Shutting down: the object stays in the ledger and the next compaction folds it.
                logger.info(f"left undelivered at shutdown: {delivery.headers['ce-subject']}")
            else:
                logger.warning(f"dropped event {delivery.headers['ce-subject']}: {error}")
        finally:
            with self._cv:
                self._in_flight -= 1
                self._cv.notify_all()

    def _post(self, delivery: Delivery) -> str | None:
        """None when the function acknowledged the event (2xx), else why not."""
        try:
            resp = requests.post(
                self.target_url, data=delivery.body, headers=delivery.headers, timeout=self._timeout_s
            )
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= resp.status_code < 300:
            return None
        return f"HTTP {resp.status_code}: {resp.text[:200]}"

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no delivery is in flight (tests and shutdown)."""
        with self._cv:
            return self._cv.wait_for(lambda: self._in_flight == 0, timeout)

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop(grace=1).wait(2)
            self._server = None
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EventarcBridge:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _unary(fn: Callable[[Any, grpc.ServicerContext], Any], request_type: Any) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        fn,
        request_deserializer=request_type.deserialize,
        response_serializer=lambda msg: type(msg).serialize(msg),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pub/Sub Publisher stand-in posting Eventarc CloudEvents")
    parser.add_argument("--target", required=True, help="URL of the CloudEvent function (the compactor)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--filter", default=LEDGER_FILTER, help="substring an object name must contain")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with EventarcBridge(args.target, host=args.host, port=args.port, name_filter=args.filter) as bridge:
        print(f"eventarc stand-in listening on {bridge.address} -> {args.target}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()


if __name__ == "__main__":
    main()
