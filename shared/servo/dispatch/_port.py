"""The TaskQueue port: how work reaches workers and timers (design §2, §5.6).

One primitive, ``enqueue``. Every task carries a deterministic name (the ``d_…``/``t_…`` Cloud Task id of
contracts §5), so enqueueing is idempotent: a name that was already created, delivered or deleted answers
``ALREADY_EXISTS``, which callers count as success.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from servo.core.errors import InvalidId, InvalidInput, ServoError

_TASK_ID_RE = re.compile(r"[dts]_[a-z2-7]{26}")  # dispatch, timer, sensor evaluation
# Cloud Tasks queue ids: letters, digits and hyphens, at most 100 characters.
_QUEUE_RE = re.compile(r"[A-Za-z0-9-]{1,100}")


class QueueFull(ServoError):
    """The queue refused the task for now (HTTP 429 / gRPC RESOURCE_EXHAUSTED); try again later."""

    code = "QUEUE_FULL"
    http_status = 503
    retryable = True


class QueueUnavailable(ServoError):
    """The queue could not be reached or failed the request; the task may or may not exist."""

    code = "QUEUE_UNAVAILABLE"
    http_status = 503
    retryable = True


class EnqueueOutcome(enum.Enum):
    """What ``enqueue`` did; both values mean the task is (or was) in the queue."""

    CREATED = "CREATED"
    ALREADY_EXISTS = "ALREADY_EXISTS"


@dataclass(frozen=True, slots=True)
class HttpTask:
    """One HTTP POST to deliver, named for dedup.

    Attributes:
        task_id: the 28-character ``d_…``/``t_…`` id, the last segment of the Cloud Task name.
        url: where to POST.
        body: the request body.
        headers: request headers (copied; the task never shares a caller's dict).
        schedule_time_ms: earliest delivery time in epoch milliseconds, None for now.
        oidc_service_account: the service account whose OIDC token authenticates the POST (GCP only).
        oidc_audience: the token's audience; defaults to the URL on Cloud Tasks when None.
        dispatch_deadline_s: how long one delivery may take before it counts as failed.
    """

    task_id: str
    url: str
    body: bytes
    headers: Mapping[str, str]
    schedule_time_ms: int | None = None
    oidc_service_account: str | None = None
    oidc_audience: str | None = None
    dispatch_deadline_s: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.task_id, str) or not _TASK_ID_RE.fullmatch(self.task_id):
            raise InvalidId(
                f"invalid task id {self.task_id!r}: expected d_, t_ or s_ and 26 base32 characters"
            )
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise InvalidInput(f"invalid task url {self.url!r}: expected http:// or https://")
        if not isinstance(self.body, bytes):
            raise InvalidInput(f"task body must be bytes, got {type(self.body).__name__}")
        if self.schedule_time_ms is not None and self.schedule_time_ms < 0:
            raise InvalidInput(f"schedule_time_ms must be >= 0, got {self.schedule_time_ms}")
        if self.dispatch_deadline_s is not None and self.dispatch_deadline_s <= 0:
            raise InvalidInput(f"dispatch_deadline_s must be > 0, got {self.dispatch_deadline_s}")
        if self.oidc_audience is not None and self.oidc_service_account is None:
            raise InvalidInput("oidc_audience needs oidc_service_account")
        # Freeze the headers too: a task is a value, and the caller may reuse its dict.
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))


def validate_queue_id(queue: str) -> str:
    """Return ``queue`` if it is a valid Cloud Tasks queue id, else raise InvalidId."""
    if not isinstance(queue, str) or not _QUEUE_RE.fullmatch(queue):
        raise InvalidId(f"invalid queue id {queue!r}: expected 1-100 letters, digits or hyphens")
    return queue


@runtime_checkable
class TaskQueue(Protocol):
    """A named-task queue with Cloud Tasks semantics."""

    def enqueue(self, queue: str, task: HttpTask) -> EnqueueOutcome:
        """Create ``task`` in ``queue`` unless a task of that name exists or recently existed.

        Raises:
            QueueFull: the queue is throttling creation; retry later.
            QueueUnavailable: the queue service failed; retry (names make the retry safe).
            InvalidId: the queue id is malformed.
        """
        ...
