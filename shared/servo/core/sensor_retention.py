"""Sensor retention (automation §5: evaluations, items and resolved requests 30 days): the settled start
of a sensor's compare-and-set chain is folded into its checkpoint, and the events it came from go.

The view is a function of the checkpoint and the events kept, and every decision here reads only the
checkpoint and the events older than the boundary: when those are the same (a live projection and a
rebuild at the same clock both hold every event that old, as the ledger lands a write within its
look-back), the kept events and the new checkpoint are the same, so a rebuild still equals the live
projection. What is let go:

- the steps of the chain taken before the boundary (their claims, and the results that lost them), up
  to the first step not settled: its winner is newer, or it is an evaluation with a run request not
  resolved before the boundary (a run still owed keeps its evaluation, as a schedule's tick is kept);
- ERROR results at any version (a sensor that keeps failing stays at one version), their counts kept;
- requests answered by a result let go, of an older version, superseded by a newer attempt, or manual;
- finished items (DONE by an evaluation let go, FAILED, SKIPPED) that arrived before the boundary, and
  the outcomes of requests whose evaluation went.

What a kept event still needs is carried: the version, enabled flag and cursor, the newest evaluation
and error, the newest applied disable (it skips items pending before it), attempt numbers at the
current version (an id is never reused), and the errors and DONE marks of items still kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from servo.core.canonical_json import canonical_bytes
from servo.core.schedule_fold import RETENTION_MS
from servo.core.sensor_fold import (
    ITEM_FAILURE_LIMIT,
    Seen,
    SensorCheckpoint,
    SensorLog,
    walk_chain,
)
from servo.core.sensors import parse_evaluation_id

__all__ = [
    "DUPLICATE_WINDOW_MS",
    "RETENTION_MS",
    "SETTLE_MS",
    "checkpoint_from_json",
    "checkpoint_json",
    "checkpoint_sensor",
]

# How far behind the clock the checkpoint settles: far past the window in which a late write still
# lands (the ledger's look-back, minutes) and the run projection's lag the run scan allows for (15
# minutes: a run that ended before a checkpoint is no new item), so the live projection and a rebuild
# at the same clock hold the same events older than it.
SETTLE_MS = 3_600_000
# A second copy of one key (a push message, an evaluation's request or result: the same idempotency
# key under another event id) is a duplicate of the first while that one is kept, or was let go at most
# this long before the copy: the finished row of what a cut lets go expires ``RETENTION_MS`` behind the
# clock, the cut is ``SETTLE_MS`` behind it on the same grid, so a copy the live projection folds (never
# older than its last cut) still finds the row of every first copy this close to it. A rebuild applies
# the same rule, so wherever the cuts fell, a copy means the same.
DUPLICATE_WINDOW_MS = RETENTION_MS - SETTLE_MS


def checkpoint_sensor(
    log: SensorLog, boundary: str, run_items: Mapping[str, str] | None = None, *, again: bool = False
) -> tuple[SensorLog, frozenset[str]]:
    """``log`` with its history settled before ``boundary`` (an event id) folded into its checkpoint,
    and the ``run_items`` (item id -> arrival id) let go with it. ``log`` is not modified.

    A sensor gets a checkpoint once something is let go; from then on every cut moves its boundary,
    and the fold turns away events older than it. ``again``: cut at the boundary the checkpoint has
    (a copy of a key that went counts on its own and is older than it).
    """
    base = log.base
    if boundary < base.boundary or (boundary == base.boundary and not again):
        return log, frozenset()
    run_items = run_items or {}
    chain = walk_chain(log, until=boundary)
    version, applied = chain.version, set(chain.applied)
    last_disable = max([base.last_disable, *chain.disables])
    last, last_error = base.last_evaluation, base.last_error_at
    attempts = {v: a for v, a in base.attempts.items() if v >= version}
    failures, done = dict(base.failures), set(base.done)
    dropped: list[str] = []

    def count_attempt(evaluation_id: str, expected: int, trigger: str) -> None:
        if trigger == "MANUAL" or expected < version:
            return  # only the attempts of the versions still to come name new evaluations
        attempt = parse_evaluation_id(evaluation_id).attempt or 0
        attempts[expected] = max(attempts.get(expected, 0), attempt)

    results: dict[str, Seen] = {}
    for eid, seen in log.results.items():
        data = seen.data
        erred = data.status == "ERROR"
        if seen.event_id >= boundary or not (erred or data.expected_state_version < version):
            results[eid] = seen
            continue
        dropped.append(seen.event_id)
        if erred or eid in applied:
            last = max(last or (seen.at, eid, data.status), (seen.at, eid, data.status))
        if erred:
            last_error = max(last_error or seen.at, seen.at)
            for item_id in set(data.item_ids):
                failures[item_id] = failures.get(item_id, 0) + 1
        elif eid in applied:
            done.update(data.item_ids)
        count_attempt(eid, data.expected_state_version, data.trigger)

    # Only requests older than the boundary can go (their ids are parsed once, not the whole log's).
    old = {eid: parse_evaluation_id(eid) for eid, seen in log.requested.items() if seen.event_id < boundary}
    newest: dict[int, int] = {}
    for ref in old.values():
        if ref.attempt is not None:
            newest[ref.state_version or 0] = max(newest.get(ref.state_version or 0, 0), ref.attempt)
    requested: dict[str, Seen] = {}
    for eid, seen in log.requested.items():
        ref_ = old.get(eid)
        if ref_ is None:
            requested[eid] = seen
            continue
        data = seen.data
        answered = eid in log.results and eid not in results
        unanswered = eid not in log.results or log.results[eid].event_id >= boundary
        superseded = ref_.attempt is not None and ref_.attempt < newest.get(ref_.state_version or 0, 0)
        if (
            data.expected_state_version < version
            or answered
            or (unanswered and (superseded or data.trigger == "MANUAL"))
        ):
            dropped.append(seen.event_id)
            count_attempt(eid, data.expected_state_version, data.trigger)
        else:
            requested[eid] = seen

    def finished(item_id: str, arrived: str, recorded: str) -> bool:
        return arrived < boundary and (
            item_id in done
            or recorded != "RECORDED"
            or failures.get(item_id, 0) >= ITEM_FAILURE_LIMIT
            or last_disable > arrived
        )

    messages = {}
    for message_id, seen in log.messages.items():
        if finished(seen.data.item_id, seen.event_id, seen.data.status):
            dropped.append(seen.event_id)
        else:
            messages[message_id] = seen
    gone_items = frozenset(i for i, arrived in run_items.items() if finished(i, arrived, "RECORDED"))
    kept_items = {m.data.item_id for m in messages.values()} | (set(run_items) - gone_items)

    statuses = {}
    for key, seen in log.statuses.items():
        if seen.event_id < boundary and key[0] <= version:
            dropped.append(seen.event_id)
        else:
            statuses[key] = seen
    settled = {eid for eid, seen in results.items() if seen.event_id < boundary}
    resolved = {}
    for request_id, seen in log.resolved.items():
        if seen.event_id < boundary and request_id.removeprefix("eval:").rsplit(":", 1)[0] not in settled:
            dropped.append(seen.event_id)
        else:
            resolved[request_id] = seen

    dropped += [run_items[i] for i in gone_items]
    if not dropped and version == base.state_version:
        # Nothing let go now. A sensor that never let anything go has no checkpoint (an event older
        # than the boundary still folds as it would in a rebuild); one that did moves its boundary, as
        # a rebuild's one cut at this boundary would have put it.
        return (log if not base.boundary else replace(log, base=replace(base, boundary=boundary))), gone_items
    new_base = SensorCheckpoint(
        boundary=boundary,
        state_version=version,
        enabled=chain.enabled if version > base.state_version else base.enabled,
        cursor=chain.cursor,
        last_disable=last_disable,
        last_evaluation=last,
        last_error_at=last_error,
        attempts=attempts,
        failures={i: n for i, n in failures.items() if i in kept_items},
        done=frozenset(done & kept_items),
    )
    new_log = replace(
        log,
        statuses=statuses,
        messages=messages,
        requested=requested,
        results=results,
        resolved=resolved,
        base=new_base,
    )
    return new_log, gone_items


def checkpoint_json(base: SensorCheckpoint) -> str:
    """The checkpoint as canonical JSON (the ``sensor_checkpoints`` table's body)."""
    body: dict[str, Any] = {
        "boundary": base.boundary,
        "stateVersion": base.state_version,
        "enabled": base.enabled,
        "cursor": base.cursor,
        "lastDisable": base.last_disable,
        "lastEvaluation": None if base.last_evaluation is None else list(base.last_evaluation),
        "lastErrorAt": base.last_error_at,
        "attempts": {str(v): a for v, a in base.attempts.items()},
        "failures": dict(base.failures),
        "done": sorted(base.done),
    }
    return canonical_bytes(body).decode("utf-8")


def checkpoint_from_json(text: str) -> SensorCheckpoint:
    raw = json.loads(text)
    last = raw["lastEvaluation"]
    return SensorCheckpoint(
        boundary=raw["boundary"],
        state_version=raw["stateVersion"],
        enabled=raw["enabled"],
        cursor=raw["cursor"],
        last_disable=raw["lastDisable"],
        last_evaluation=None if last is None else (int(last[0]), str(last[1]), str(last[2])),
        last_error_at=raw["lastErrorAt"],
        attempts={int(v): a for v, a in raw["attempts"].items()},
        failures=dict(raw["failures"]),
        done=frozenset(raw["done"]),
    )
