"""Sensor event payloads (automation §5): definitions, status, push messages, evaluation requests and
results. Each derives its idempotency key from its ids, so a replayed deploy, a redelivered push message,
a repeated sweep or a retried callback writes the same key.

Registered with the ledger codec (``core/_event_types.py``) as automation events: they belong to no run,
so the run fold and the compactor skip them; ``servo.core.sensor_fold`` folds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from servo.core._event_fields import bad_field

MESSAGE_STATUSES = frozenset({"RECORDED", "SKIPPED", "FAILED"})
EVALUATION_TRIGGERS = frozenset({"POLL", "PUSH", "RUN_STATUS", "MANUAL"})
RESULT_STATUSES = frozenset({"TRIGGERED", "SKIPPED", "ERROR"})


@dataclass(frozen=True, slots=True)
class SensorDefinitionUpserted:
    sensor_id: str
    manifest_id: str
    definition: dict[str, Any]
    definition_hash: str
    definition_version: int

    KINDS: ClassVar[Mapping[str, str]] = {
        "sensor_id": "id", "manifest_id": "id", "definition": "obj", "definition_hash": "id",
        "definition_version": "attempt",
    }  # fmt: skip

    def idempotency_key(self) -> str:
        return f"sensor_def:{self.sensor_id}:{self.manifest_id}"


@dataclass(frozen=True, slots=True)
class SensorDefinitionRemoved:
    sensor_id: str
    manifest_id: str

    KINDS: ClassVar[Mapping[str, str]] = {"sensor_id": "id", "manifest_id": "id"}

    def idempotency_key(self) -> str:
        return f"sensor_def_rm:{self.sensor_id}:{self.manifest_id}"


@dataclass(frozen=True, slots=True)
class SensorStatusChanged:
    """An operator's enable/disable, claiming the step to ``state_version`` (current + 1)."""

    sensor_id: str
    enabled: bool
    state_version: int

    KINDS: ClassVar[Mapping[str, str]] = {"sensor_id": "id", "enabled": "bool", "state_version": "attempt"}

    def idempotency_key(self) -> str:
        word = "ENABLED" if self.enabled else "DISABLED"
        return f"sensor_status:{self.sensor_id}:{self.state_version}:{word}"


@dataclass(frozen=True, slots=True)
class SensorMessageReceived:
    """A push message: RECORDED (an inbox item), SKIPPED (sensor disabled) or FAILED (data too large)."""

    sensor_id: str
    message_id: str
    data_b64: str
    attributes: dict[str, str] = field(default_factory=dict)
    status: str = "RECORDED"
    publish_time: str | None = None

    KINDS: ClassVar[Mapping[str, str]] = {
        "sensor_id": "id", "message_id": "id", "data_b64": "str", "attributes": "obj", "status": "id",
        "publish_time": "str",
    }  # fmt: skip

    def __post_init__(self) -> None:
        if self.status not in MESSAGE_STATUSES:
            raise bad_field("status", f"{self.status!r} not in {sorted(MESSAGE_STATUSES)}")

    @property
    def item_id(self) -> str:
        return f"msg:{self.message_id}"

    def idempotency_key(self) -> str:
        return f"sensor_msg:{self.sensor_id}:{self.message_id}"


@dataclass(frozen=True, slots=True)
class SensorEvaluationRequested:
    """An evaluation the sweep (or a manual evaluate) owes, computed from ``expected_state_version``."""

    sensor_id: str
    evaluation_id: str
    expected_state_version: int
    not_before: int
    trigger: str
    item_ids: tuple[str, ...] = ()

    KINDS: ClassVar[Mapping[str, str]] = {
        "sensor_id": "id", "evaluation_id": "id", "expected_state_version": "int", "not_before": "ts",
        "trigger": "id", "item_ids": "strs",
    }  # fmt: skip

    def __post_init__(self) -> None:
        if self.trigger not in EVALUATION_TRIGGERS:
            raise bad_field("trigger", f"{self.trigger!r} not in {sorted(EVALUATION_TRIGGERS)}")
        if not self.evaluation_id.startswith(f"{self.sensor_id}:"):
            raise bad_field(
                "evaluation_id", f"{self.evaluation_id!r} is not an evaluation of {self.sensor_id!r}"
            )

    def idempotency_key(self) -> str:
        return f"sensor_eval_req:{self.evaluation_id}"


@dataclass(frozen=True, slots=True)
class SensorEvaluated:
    """The worker's result; applied at fold only if ``expected_state_version`` is still current (§6.2)."""

    sensor_id: str
    evaluation_id: str
    expected_state_version: int
    trigger: str
    status: str
    cursor_updated: bool = False
    cursor: str | None = None
    item_ids: tuple[str, ...] = ()
    run_requests: tuple[dict[str, Any], ...] = ()
    reason: str | None = None
    error: str | None = None

    KINDS: ClassVar[Mapping[str, str]] = {
        "sensor_id": "id", "evaluation_id": "id", "expected_state_version": "int", "trigger": "id",
        "status": "id", "cursor_updated": "bool", "cursor": "str", "item_ids": "strs", "run_requests": "objs",
        "reason": "str", "error": "str",
    }  # fmt: skip

    def __post_init__(self) -> None:
        if self.status not in RESULT_STATUSES:
            raise bad_field("status", f"{self.status!r} not in {sorted(RESULT_STATUSES)}")
        if self.trigger not in EVALUATION_TRIGGERS:
            raise bad_field("trigger", f"{self.trigger!r} not in {sorted(EVALUATION_TRIGGERS)}")
        if self.run_requests and self.status != "TRIGGERED":
            raise bad_field("run_requests", "only a TRIGGERED evaluation carries run requests")

    def idempotency_key(self) -> str:
        return f"sensor_eval:{self.evaluation_id}"


SENSOR_EVENT_TYPES = (
    SensorDefinitionUpserted,
    SensorDefinitionRemoved,
    SensorStatusChanged,
    SensorMessageReceived,
    SensorEvaluationRequested,
    SensorEvaluated,
)
