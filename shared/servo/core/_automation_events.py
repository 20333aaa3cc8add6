"""Automation event payloads of schedules (automation §5): definitions, status, ticks, request outcomes.

They belong to no run (``run_id`` is None), so the run fold skips them; ``servo.core.schedule_fold``
folds them into the ``schedules``, ``schedule_ticks`` and ``run_requests`` rows. Each derives its own
idempotency key from its ids, so a replayed deploy, status change or sweep writes the same key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from servo.core._backfill_events import (
    BACKFILL_EVENT_TYPES,
    BackfillChunkPlanned,
    BackfillCreated,
    BackfillStateChanged,
)
from servo.core._event_fields import bad_field
from servo.core._sensor_events import SENSOR_EVENT_TYPES

__all__ = [
    "AUTOMATION_EVENT_TYPES",
    "BackfillChunkPlanned",
    "BackfillCreated",
    "BackfillStateChanged",
    "RunRequestResolved",
    "ScheduleDefinitionRemoved",
    "ScheduleDefinitionUpserted",
    "ScheduleStatusChanged",
    "ScheduleTicked",
]

TICK_STATUSES = frozenset({"TRIGGERED", "SKIPPED", "FAILED"})
REQUEST_OUTCOMES = frozenset({"CREATED", "EXISTING", "CONFLICT", "REJECTED"})


@dataclass(frozen=True, slots=True)
class ScheduleDefinitionUpserted:
    """A deploy brought a new or changed definition (``definition_version`` counts its hash changes)."""

    schedule_id: str
    manifest_id: str
    definition: dict[str, Any]
    definition_hash: str
    definition_version: int

    KINDS: ClassVar[Mapping[str, str]] = {
        "schedule_id": "id", "manifest_id": "id", "definition": "obj", "definition_hash": "id",
        "definition_version": "attempt",
    }  # fmt: skip

    def idempotency_key(self) -> str:
        return f"sched_def:{self.schedule_id}:{self.manifest_id}"


@dataclass(frozen=True, slots=True)
class ScheduleDefinitionRemoved:
    schedule_id: str
    manifest_id: str

    KINDS: ClassVar[Mapping[str, str]] = {"schedule_id": "id", "manifest_id": "id"}

    def idempotency_key(self) -> str:
        return f"sched_def_rm:{self.schedule_id}:{self.manifest_id}"


@dataclass(frozen=True, slots=True)
class ScheduleStatusChanged:
    """An operator's enable/disable; the highest ``status_version`` wins (ties: the later event)."""

    schedule_id: str
    enabled: bool
    status_version: int

    KINDS: ClassVar[Mapping[str, str]] = {"schedule_id": "id", "enabled": "bool", "status_version": "attempt"}

    def idempotency_key(self) -> str:
        word = "ENABLED" if self.enabled else "DISABLED"
        return f"sched_status:{self.schedule_id}:{self.status_version}:{word}"


@dataclass(frozen=True, slots=True)
class ScheduleTicked:
    """One tick, recorded once: TRIGGERED with its run request, SKIPPED or FAILED with a reason."""

    tick_id: str
    schedule_id: str
    scheduled_for: int
    status: str
    definition_version: int
    reason: str | None = None
    run_request: dict[str, Any] | None = None

    KINDS: ClassVar[Mapping[str, str]] = {
        "tick_id": "id", "schedule_id": "id", "scheduled_for": "ts", "status": "id",
        "definition_version": "attempt", "reason": "str", "run_request": "obj",
    }  # fmt: skip

    def __post_init__(self) -> None:
        if self.status not in TICK_STATUSES:
            raise bad_field("status", f"{self.status!r} not in {sorted(TICK_STATUSES)}")
        if (self.status == "TRIGGERED") != (self.run_request is not None):
            raise bad_field("run_request", "a TRIGGERED tick, and only one, carries a run request")
        if not self.tick_id.startswith(f"{self.schedule_id}:"):
            raise bad_field("tick_id", f"{self.tick_id!r} is not a tick of {self.schedule_id!r}")

    def idempotency_key(self) -> str:
        return f"sched_tick:{self.tick_id}"


@dataclass(frozen=True, slots=True)
class RunRequestResolved:
    """What submitting one run request gave: the run it created or found, or why it made none."""

    request_id: str
    outcome: str
    run_key: str
    run_id: str | None = None
    request_fingerprint: str | None = None
    existing_fingerprint: str | None = None
    message: str | None = None

    KINDS: ClassVar[Mapping[str, str]] = {
        "request_id": "id", "outcome": "id", "run_key": "id", "run_id": "id", "request_fingerprint": "str",
        "existing_fingerprint": "str", "message": "str",
    }  # fmt: skip

    def __post_init__(self) -> None:
        if self.outcome not in REQUEST_OUTCOMES:
            raise bad_field("outcome", f"{self.outcome!r} not in {sorted(REQUEST_OUTCOMES)}")

    def idempotency_key(self) -> str:
        return f"runreq_done:{self.request_id}"


SCHEDULE_EVENT_TYPES = (
    ScheduleDefinitionUpserted,
    ScheduleDefinitionRemoved,
    ScheduleStatusChanged,
    ScheduleTicked,
)
AUTOMATION_EVENT_TYPES = (
    *SCHEDULE_EVENT_TYPES,
    RunRequestResolved,
    *SENSOR_EVENT_TYPES,
    *BACKFILL_EVENT_TYPES,
)
