"""TaskDef: one planned task of a run, as carried by the PlanCreated event (contracts §6)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_ATTEMPTS = 3
# design.md §6: a task silent past 90 s is a zombie (the reference's 300 s is overridden).
DEFAULT_HEARTBEAT_TIMEOUT_SEC = 90
DEFAULT_WORKER_QUEUE = "default-queue"


@dataclass(frozen=True, slots=True)
class TaskDef:
    """A planned task. ``key`` is the runtime task_key: the dot asset key (contracts §4a)."""

    key: str
    depends_on: tuple[str, ...] = ()
    asset_key: str | None = None
    partition_key: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    heartbeat_timeout_sec: int = DEFAULT_HEARTBEAT_TIMEOUT_SEC
    requires_visible_output: bool = False
    # Servo extension (nullable on the wire): bound on one attempt, from @asset(timeout_seconds=...).
    timeout_seconds: int | None = None
    # automation §5: the asset's deployed transformFingerprint, so a materialization records the code
    # that made it (staleness CODE_CHANGED). None in plans made before manifests carried it.
    code_version: str | None = None
