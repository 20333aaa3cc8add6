"""How a run comes into being, so that a crash between its writes is finished by whoever comes next.

A trigger writes, in this order: the run-key reservation (when the run has a key; it decides which
request creates the run, and carries a copy of the record, so a same-key retry that finds no record
rebuilds the creator's), the run's creation record ``creations/{run_id}.json``, then RunTriggered and
PlanCreated. The record holds everything the two events are made of — their ids and time, the manifest
the run was planned on, the resolved request, the heartbeat limit, the traceparent — and the events
are only ever built from a stored record. So the creator, a same-key retry and the sweep write the
same bytes: none of them can be refused by another's partial write (create-if-absent with other
bytes would be a 409), and a run left without either event is finished by the next same-key retry
or by the sweep (which visits every published run that has no plan yet).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from servo.core._event_fields import taskdef_from_json
from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import PreconditionFailed
from servo.core.events import Event, PlanCreated, RunTriggered, ledger_object_name, make_encoded_event
from servo.core.planner import Plan, TaskOptions, plan
from servo.core.timefmt import parse_timestamp
from servo.services.context import ServiceContext
from servo.services.ledger import append_made, fold_written
from servo.services.manifests import DeployedManifest, load_manifest

logger = logging.getLogger("servo.trigger")
CREATIONS_PREFIX = "creations/"


@dataclass(frozen=True, slots=True)
class CreationRecord:
    """Everything a run's first two events are built from (wire names are the field names)."""

    run_id: str
    plan_id: str
    event_id: str
    plan_event_id: str
    created_at: str
    manifest_id: str
    roots: tuple[str, ...]
    include_upstream: bool
    include_downstream: bool
    partition_key: str | None
    run_key: str | None
    labels: Mapping[str, str]
    timeout_seconds: int | None
    traceparent: str | None
    heartbeat_timeout_sec: int
    # What made the run (RunTriggered.trigger); None (omitted) is a person's TriggerRun.
    trigger: Mapping[str, Any] | None = None
    # The planned TaskDefs in wire form when the run re-executes another run's tasks (a rerun);
    # None (omitted) plans ``roots`` on the manifest.
    tasks: tuple[Mapping[str, Any], ...] | None = None

    def to_doc(self) -> dict[str, Any]:
        doc = {**asdict(self), "roots": list(self.roots), "labels": dict(self.labels)}
        if self.trigger is None:
            del doc["trigger"]
        if self.tasks is None:
            del doc["tasks"]
        else:
            doc["tasks"] = [dict(t) for t in self.tasks]
        return doc

    def encode(self) -> bytes:
        return canonical_bytes(self.to_doc())

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> CreationRecord:
        tasks = doc.get("tasks")
        return cls(
            **{
                **doc,
                "roots": tuple(doc["roots"]),
                "labels": dict(doc["labels"]),
                "tasks": None if tasks is None else tuple(tasks),
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> CreationRecord:
        return cls.from_doc(loads_strict(raw))


def record_name(run_id: str) -> str:
    return f"{CREATIONS_PREFIX}{run_id}.json"


def store_record(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, record: CreationRecord
) -> CreationRecord:
    """Write the record create-if-absent; the stored one (another writer's, if it came first) wins."""
    store = ctx.workspace_store(tenant_id, workspace_id)
    try:
        store.create(record_name(record.run_id), record.encode())
        return record
    except PreconditionFailed:
        found = store.get(record_name(record.run_id))
        if found is None:  # only a create that failed after landing leaves nothing to read: retry it
            raise
        return CreationRecord.decode(found.data)


def plan_run(manifest: DeployedManifest, record: CreationRecord, tenant_id: str, workspace_id: str) -> Plan:
    """The run's plan: the same for the same record and manifest (the planner is pure)."""
    if record.tasks is not None:
        return Plan(
            root_assets=record.roots,
            tasks=tuple(taskdef_from_json(t) for t in record.tasks),
            fingerprint="",
        )
    options = {
        k: TaskOptions(
            max_retries=a.max_retries,
            timeout_seconds=a.timeout_seconds,
            heartbeat_timeout_sec=record.heartbeat_timeout_sec,
            code_version=a.code_version,
        )
        for k, a in manifest.assets.items()
    }
    return plan(
        manifest.graph(),
        record.roots,
        include_upstream=record.include_upstream,
        include_downstream=record.include_downstream,
        partition_key=record.partition_key,
        task_options=options,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
    )


def run_events(
    tenant_id: str, workspace_id: str, record: CreationRecord, manifest: DeployedManifest, the_plan: Plan
) -> list[tuple[Event, bytes]]:
    """RunTriggered and PlanCreated with their bytes (so the append does not encode them again), byte
    for byte the same for the same record and manifest."""
    now = parse_timestamp(record.created_at)
    triggered = make_encoded_event(
        RunTriggered(
            run_id=record.run_id,
            plan_id=record.plan_id,
            trigger=dict(record.trigger) if record.trigger else {"type": "manual", "user_id": "api"},
            root_assets=tuple(the_plan.root_assets),
            run_key=record.run_key,
            labels=dict(record.labels) or None,
            code_version=manifest.code_version_id,
            timeout_seconds=record.timeout_seconds,
            traceparent=record.traceparent,
        ),
        event_id=record.event_id,
        timestamp_ms=now,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
    )
    planned = make_encoded_event(
        PlanCreated(run_id=record.run_id, plan_id=record.plan_id, tasks=tuple(the_plan.tasks)),
        event_id=record.plan_event_id,
        timestamp_ms=now,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
        causation_id=record.event_id,
    )
    return [triggered, planned]


def rebuild_events(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, record: CreationRecord
) -> list[tuple[Event, bytes]]:
    """The run's events from its record alone, against the manifest it was planned on."""
    manifest = load_manifest(ctx, tenant_id, workspace_id, record.manifest_id)
    the_plan = plan_run(manifest, record, tenant_id, workspace_id)
    return run_events(tenant_id, workspace_id, record, manifest, the_plan)


def emit_missing(
    ctx: ServiceContext, tenant_id: str, workspace_id: str, events: list[tuple[Event, bytes]]
) -> int:
    """Append the events not in the ledger yet; how many were missing.

    When all were written but the run is still being repaired, they are not folded yet, and their ids
    may lie before every look-back of the sweep (a lost finalize event): hand them over to a fold.
    """
    store = ctx.workspace_store(tenant_id, workspace_id)
    missing = [(e, b) for e, b in events if store.get(ledger_object_name(e.event_id)) is None]
    if missing:
        append_made(ctx, tenant_id, workspace_id, missing)
    else:
        fold_written(ctx, tenant_id, workspace_id, [ledger_object_name(e.event_id) for e, _ in events])
    return len(missing)


def finish_creation(ctx: ServiceContext, tenant_id: str, workspace_id: str, run_id: str) -> int:
    """Write whichever of a run's first two events is missing, from its record; how many were.

    Nothing happens for a run with no record (one created before records existed, or not by trigger).
    """
    found = ctx.workspace_store(tenant_id, workspace_id).get(record_name(run_id))
    if found is None:
        return 0
    record = CreationRecord.decode(found.data)
    written = emit_missing(ctx, tenant_id, workspace_id, rebuild_events(ctx, tenant_id, workspace_id, record))
    if written:
        logger.warning("finished the creation of run %s (%d event(s) were missing)", run_id, written)
    return written
