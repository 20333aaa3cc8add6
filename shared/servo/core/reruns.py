"""Which tasks a rerun plans, and its default run key (automation §6.7). Pure: the parent is passed in.

A rerun reuses the parent's TaskDefs (partition, retries, timeouts) so it re-executes what the parent
planned, not what the manifest would plan today; only the dependencies are pruned to the chosen set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from servo.core.canonical_json import canonical_dumps
from servo.core.errors import Conflict, InvalidInput
from servo.core.taskdef import TaskDef

FROM_FAILURE = "from_failure"
SUBSET = "subset"
KINDS = (FROM_FAILURE, SUBSET)
API_KINDS = {FROM_FAILURE: "FROM_FAILURE", SUBSET: "SUBSET"}
REASONS = {FROM_FAILURE: "from_failure_unsucceeded_tasks", SUBSET: "subset_selection"}
LABEL_PARENT = "servo.parent_run_id"
LABEL_ROOT = "servo.root_run_id"
LABEL_KIND = "servo.rerun.kind"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})
FAILED_ENDINGS = frozenset({"FAILED", "CANCELLED", "TIMED_OUT"})


def _closure(start: Iterable[str], edges: Mapping[str, set[str]]) -> set[str]:
    seen = set(start)
    frontier = list(seen)
    while frontier:
        for nxt in edges.get(frontier.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


def chosen_tasks(
    parent_state: str,
    plan: Sequence[TaskDef],
    task_states: Mapping[str, str],
    kind: str,
    selection: Sequence[str] = (),
    *,
    include_upstream: bool = False,
    include_downstream: bool = False,
) -> tuple[TaskDef, ...]:
    """The rerun's tasks: the parent's TaskDefs of the chosen set, dependencies pruned to it, by key.

    Raises:
        Conflict: the parent has not ended; from failure of a parent that did not fail, or whose
            every task succeeded.
        InvalidInput: a subset that is empty or names keys outside the parent's plan.
    """
    if parent_state not in TERMINAL:
        raise Conflict(
            f"the parent run is {parent_state}; only an ended run can be rerun",
            details={"conflictType": "PARENT_NOT_TERMINAL", "parentState": parent_state},
        )
    by_key = {t.key: t for t in plan}
    if kind == FROM_FAILURE:
        if parent_state not in FAILED_ENDINGS:
            raise Conflict(
                f"the parent run is {parent_state}; a rerun from failure needs a FAILED, CANCELLED "
                "or TIMED_OUT parent",
                details={"conflictType": "PARENT_NOT_FAILED", "parentState": parent_state},
            )
        chosen = {k for k in by_key if task_states.get(k) != "SUCCEEDED"}
        if not chosen:
            raise Conflict(
                "every task of the parent run succeeded; nothing to rerun",
                details={"conflictType": "NOTHING_TO_RERUN", "parentState": parent_state},
            )
    else:
        if not selection:
            raise InvalidInput("selection must name at least one task of the parent run")
        outside = sorted(set(selection) - set(by_key))
        if outside:
            raise InvalidInput(
                f"selection names keys outside the parent run's plan: {', '.join(outside)}",
                details={"outside": outside},
            )
        chosen = set(selection)
        downstream: dict[str, set[str]] = {}
        upstream: dict[str, set[str]] = {k: set(t.depends_on) for k, t in by_key.items()}
        for key, deps in upstream.items():
            for dep in deps:
                downstream.setdefault(dep, set()).add(key)
        if include_upstream:
            chosen |= _closure(selection, upstream)
        if include_downstream:
            chosen |= _closure(selection, downstream)
    return tuple(
        replace(by_key[k], depends_on=tuple(d for d in by_key[k].depends_on if d in chosen))
        for k in sorted(chosen, key=lambda s: s.encode())
    )


def rerun_labels(
    parent_run_id: str, parent_labels: Mapping[str, str], request_labels: Mapping[str, str], kind: str
) -> dict[str, str]:
    """The parent's labels, then the request's, then the lineage labels (which a user cannot set)."""
    root = parent_labels.get(LABEL_ROOT, parent_run_id)
    lineage = {LABEL_PARENT: parent_run_id, LABEL_ROOT: root, LABEL_KIND: kind}
    merged = {**parent_labels, **request_labels, **lineage}
    return {k: merged[k] for k in sorted(merged, key=lambda s: s.encode())}


def default_run_key(parent_run_id: str, kind: str, tasks: Iterable[str], partition_key: str | None) -> str:
    """``rerun:{parent}:{kind}:{16 hex}``: the same request on the same parent is the same run."""
    body = {
        "parent": parent_run_id,
        "kind": kind,
        "tasks": sorted(tasks, key=lambda s: s.encode()),
        "partitionKey": partition_key,
    }
    digest = hashlib.sha256(canonical_dumps(body).encode()).hexdigest()[:16]
    return f"rerun:{parent_run_id}:{kind}:{digest}"


def rerun_fields(labels: Mapping[str, str]) -> dict[str, str]:
    """parentRunId, rootRunId, rerunKind and rerunReason of a run, from its lineage labels."""
    kind = labels.get(LABEL_KIND)
    if kind not in API_KINDS or LABEL_PARENT not in labels:
        return {}
    return {
        "parentRunId": labels[LABEL_PARENT],
        "rootRunId": labels.get(LABEL_ROOT, labels[LABEL_PARENT]),
        "rerunKind": API_KINDS[kind],
        "rerunReason": REASONS[kind],
    }
