"""Sensors (automation §3, §5, §6.2): the deployed definition and its canonical hash, evaluation ids,
run keys and request ids, and the check of an evaluation's reported result against the definition.

Pure: ids derive from their inputs only, so a repeated sweep, a redelivered Cloud Task or a retried
callback computes the same evaluation, task name and run keys (P4).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from servo.core.canonical_json import canonical_bytes
from servo.core.errors import InvalidAssetKey, InvalidInput, InvalidPartitionKey, InvalidSchedule
from servo.core.keys import canonical_selection
from servo.core.partition_keys import parse_partition_key
from servo.core.schedule_partitions import normalize_partition_rule, tick_partition_key
from servo.core.schedules import (
    SCHEDULE_ID_RE,
    bounded_int,
    canonical_labels,
    check_definition_id,
    field_error,
    reserved_labels,
    shared_dimensions,
)

__all__ = [
    "INTERVAL_SECONDS",
    "MAX_CURSOR_BYTES",
    "MAX_RUN_KEY_BYTES",
    "MAX_RUN_REQUESTS",
    "RUN_STATUSES",
    "TIMEOUT_SECONDS",
    "InvalidSensor",
    "ResultRequest",
    "SensorSpec",
    "check_cursor",
    "check_result_requests",
    "evaluation_id",
    "evaluation_request_id",
    "evaluation_task_name",
    "manual_evaluation_id",
    "parse_evaluation_id",
    "parse_sensor",
    "sensor_run_key",
]

SensorKind = Literal["POLL", "PUSH", "RUN_STATUS"]
INTERVAL_SECONDS = (10, 86_400)
TIMEOUT_SECONDS = (5, 900)
DEFAULT_INTERVAL_SECONDS = 30
DEFAULT_TIMEOUT_SECONDS = 60
MAX_CURSOR_BYTES = 16 * 1024
MAX_RUN_REQUESTS = 100
MAX_RUN_KEY_BYTES = 256
RUN_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
_MESSAGE_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_DECIMAL_RE = re.compile(r"0|[1-9][0-9]{0,15}")
_POSITIVE_RE = re.compile(r"[1-9][0-9]{0,15}")


class InvalidSensor(InvalidSchedule):
    """A bad sensor definition or result; ``details["field"]`` names the field.

    A subclass of InvalidSchedule so deploy's one "bad automation definition -> 400" path covers both.
    """


def _error(field_name: str, message: str, **details: Any) -> InvalidSchedule:
    return field_error(field_name, message, error=InvalidSensor, **details)


def check_sensor_id(value: object) -> str:
    return check_definition_id(value, "sensor", InvalidSensor)


def _int(raw: Mapping[str, Any], name: str, default: int, bounds: tuple[int, int]) -> int:
    return bounded_int(raw, name, default, bounds, InvalidSensor)


def _keys(raw: Mapping[str, Any], name: str, *, required: bool) -> tuple[str, ...] | None:
    value = raw.get(name)
    if value is None and not required:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise _error(name, f"must be a non-empty list of asset keys ('ns.name'), not {value!r}")
    try:
        return tuple(canonical_selection(value))
    except InvalidAssetKey as exc:
        raise _error(name, exc.message) from None


def _run_statuses(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise _error("runStatus", f"must be a non-empty list of {sorted(RUN_STATUSES)}, not {value!r}")
    bad = [v for v in value if v not in RUN_STATUSES]
    if bad:
        raise _error("runStatus", f"{bad!r}: a run-status sensor watches {sorted(RUN_STATUSES)}")
    return tuple(sorted(set(value)))


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """A validated sensor definition; ``to_manifest()`` is its one canonical (camelCase) form.

    ``target`` is None only for an alerting run-status sensor (it requests no runs).
    """

    sensor_id: str
    kind: SensorKind
    target: tuple[str, ...] | None
    minimum_interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    default_enabled: bool = False
    run_status: tuple[str, ...] | None = None
    monitored_assets: tuple[str, ...] | None = None

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.sensor_id,
            "kind": self.kind,
            "minimumIntervalSeconds": self.minimum_interval_seconds,
            "timeoutSeconds": self.timeout_seconds,
            "defaultEnabled": self.default_enabled,
        }
        if self.target is not None:
            out["target"] = list(self.target)
        if self.run_status is not None:
            out["runStatus"] = list(self.run_status)
        if self.monitored_assets is not None:
            out["monitoredAssets"] = list(self.monitored_assets)
        return out

    @property
    def definition_hash(self) -> str:
        """``sha256:`` + hex of the canonical JSON of the manifest form: a redeploy upserts iff it changed."""
        return "sha256:" + hashlib.sha256(canonical_bytes(self.to_manifest())).hexdigest()

    def check_targets(self, dimensions_of: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Deploy-time checks against the manifest's assets (``key -> partition dimensions``).

        Raises:
            InvalidSensor: an unknown target or monitored asset, or targets partitioned differently.
        """
        for name, keys in (("target", self.target), ("monitoredAssets", self.monitored_assets)):
            unknown = [key for key in keys or () if key not in dimensions_of]
            if unknown:
                raise _error(name, f"unknown asset(s) {', '.join(unknown)}", unknown=unknown)
        if self.target:
            try:
                shared_dimensions(self.target, dimensions_of)
            except InvalidSchedule as exc:
                raise _error("target", exc.message.replace("a schedule's", "a sensor's")) from None

    def target_dimensions(
        self, dimensions_of: Mapping[str, Sequence[Mapping[str, Any]]]
    ) -> Sequence[Mapping[str, Any]]:
        """The partition dimensions the targets share (what a result's partition keys must fit)."""
        return dimensions_of.get(self.target[0], ()) if self.target else ()

    def watches(self, run_state: str, touched_assets: Sequence[str]) -> bool:
        """Whether a run reaching ``run_state`` and touching these assets adds a ``run:`` item (§6.2)."""
        if self.kind != "RUN_STATUS" or run_state not in (self.run_status or ()):
            return False
        return self.monitored_assets is None or bool(set(self.monitored_assets) & set(touched_assets))


_KNOWN = {
    "POLL": {"id", "kind", "target", "minimumIntervalSeconds", "timeoutSeconds", "defaultEnabled"},
    "PUSH": {"id", "kind", "target", "minimumIntervalSeconds", "timeoutSeconds", "defaultEnabled"},
    "RUN_STATUS": {
        "id", "kind", "target", "minimumIntervalSeconds", "timeoutSeconds", "defaultEnabled", "runStatus",
        "monitoredAssets",
    },
}  # fmt: skip


def parse_sensor(raw: object) -> SensorSpec:
    """Validate one manifest ``sensors[]`` entry (camelCase) into a spec.

    Raises:
        InvalidSensor: the first bad field, named in the message and ``details["field"]``.
    """
    if not isinstance(raw, Mapping):
        raise InvalidSensor(f"a sensor must be an object, not {raw!r}", details={"field": "sensor"})
    kind = raw.get("kind", "POLL")
    if kind not in _KNOWN:
        raise _error("kind", f"must be one of {sorted(_KNOWN)}, not {kind!r}")
    extra = sorted(str(k) for k in raw if k not in _KNOWN[kind])
    if extra:
        raise _error(extra[0], f"unknown field of a {kind} sensor (known: {', '.join(sorted(_KNOWN[kind]))})")
    sensor_id = check_sensor_id(raw.get("id"))
    default_enabled = raw.get("defaultEnabled", False)
    if not isinstance(default_enabled, bool):
        raise _error("defaultEnabled", f"must be true or false, not {default_enabled!r}")
    run_status = _run_statuses(raw.get("runStatus", ["FAILED"])) if kind == "RUN_STATUS" else None
    return SensorSpec(
        sensor_id=sensor_id,
        kind=kind,
        target=_keys(raw, "target", required=kind != "RUN_STATUS"),
        minimum_interval_seconds=_int(
            raw, "minimumIntervalSeconds", DEFAULT_INTERVAL_SECONDS, INTERVAL_SECONDS
        ),
        timeout_seconds=_int(raw, "timeoutSeconds", DEFAULT_TIMEOUT_SECONDS, TIMEOUT_SECONDS),
        default_enabled=default_enabled,
        run_status=run_status,
        monitored_assets=_keys(raw, "monitoredAssets", required=False),
    )


def check_cursor(value: object) -> str | None:
    """A cursor is an opaque string of at most 16 KiB (UTF-8), or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _error("cursor", f"must be a string, not {type(value).__name__}")
    size = len(value.encode("utf-8"))
    if size > MAX_CURSOR_BYTES:
        raise _error("cursor", f"is {size} bytes; at most {MAX_CURSOR_BYTES} (16 KiB) are allowed")
    return value


# ---------------------------------------------------------------------------------------------- ids


def _version(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"{what} {value!r} must be an int >= 0")
    return value


def evaluation_id(sensor_id: str, state_version: int, attempt: int) -> str:
    """``{sensor_id}:v{state_version}:{attempt}`` (attempt >= 1): a scheduled evaluation."""
    if _version(attempt, "attempt") < 1:
        raise InvalidInput(f"attempt {attempt!r} must be >= 1")
    return f"{check_sensor_id(sensor_id)}:v{_version(state_version, 'state version')}:{attempt}"


def manual_evaluation_id(sensor_id: str, idempotency_key: str) -> str:
    """``{sensor_id}:manual:{key}``: a manual evaluate with Idempotency-Key ``key``."""
    if not isinstance(idempotency_key, str) or not _MESSAGE_ID_RE.fullmatch(idempotency_key):
        raise InvalidInput(f"idempotency key {idempotency_key!r} must match [A-Za-z0-9._-]{{1,128}}")
    return f"{check_sensor_id(sensor_id)}:manual:{idempotency_key}"


@dataclass(frozen=True, slots=True)
class EvaluationRef:
    """A parsed evaluation id: ``key`` for a manual one, else ``state_version`` and ``attempt``."""

    sensor_id: str
    state_version: int | None = None
    attempt: int | None = None
    key: str | None = None

    @property
    def manual(self) -> bool:
        return self.key is not None


def parse_evaluation_id(text: object) -> EvaluationRef:
    """Split an evaluation id (a REST path segment, a token claim).

    Raises:
        InvalidInput: neither ``{sensor}:v{version}:{attempt}`` nor ``{sensor}:manual:{key}``.
    """
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) == 3 and SCHEDULE_ID_RE.fullmatch(parts[0]):
        sensor_id, middle, last = parts
        if middle == "manual" and _MESSAGE_ID_RE.fullmatch(last):
            return EvaluationRef(sensor_id, key=last)
        if middle.startswith("v") and _DECIMAL_RE.fullmatch(middle[1:]) and _POSITIVE_RE.fullmatch(last):
            return EvaluationRef(sensor_id, int(middle[1:]), int(last))
    raise InvalidInput(
        f"invalid evaluation id {text!r}: expected {{sensor}}:v{{version}}:{{attempt}} "
        "or {sensor}:manual:{key}"
    )


def evaluation_task_name(evaluation_id_: str) -> str:
    """The Cloud Tasks name of an evaluation: ``s_`` + lower(b32(sha256(id)))[:26]."""
    parse_evaluation_id(evaluation_id_)
    digest = hashlib.sha256(evaluation_id_.encode("utf-8")).digest()
    return "s_" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()[:26]


def evaluation_request_id(evaluation_id_: str, index: int) -> str:
    """``eval:{evaluation_id}:{i}``: the i-th run request of one evaluation."""
    return f"eval:{evaluation_id_}:{_version(index, 'request index')}"


def sensor_run_key(
    sensor_id: str,
    index: int,
    *,
    run_key: str | None = None,
    state_version: int | None = None,
    message_id: str | None = None,
    run_id: str | None = None,
) -> str:
    """The run key of a sensor's run request (§5): ``sensor:{id}:{k}`` for the user's key ``k``, else
    ``sensor:{id}:`` + ``msg:{message_id}:{i}`` (push), ``run:{run_id}:{i}`` (run status) or
    ``v{state_version}:{i}`` (poll), ``i`` the request's index among the evaluation's (or item's) requests.

    Raises:
        InvalidSensor: the key is over 256 bytes (``details.field = runKey``) or no source was given.
    """
    prefix = f"sensor:{check_sensor_id(sensor_id)}:"
    if run_key is not None:
        if not isinstance(run_key, str) or not run_key:
            raise _error("runKey", f"must be a non-empty string, not {run_key!r}", index=index)
        key = prefix + run_key
    elif message_id is not None:
        key = f"{prefix}msg:{message_id}:{_version(index, 'request index')}"
    elif run_id is not None:
        key = f"{prefix}run:{run_id}:{_version(index, 'request index')}"
    elif state_version is not None:
        key = f"{prefix}v{_version(state_version, 'state version')}:{_version(index, 'request index')}"
    else:
        raise InvalidInput("sensor_run_key needs run_key, message_id, run_id or state_version")
    size = len(key.encode("utf-8"))
    if size > MAX_RUN_KEY_BYTES:
        raise _error("runKey", f"run key is {size} bytes; at most {MAX_RUN_KEY_BYTES}", index=index)
    return key


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class ResultRequest:
    """One checked run request of a result: canonical selection and partition key, derived run key."""

    request_id: str
    run_key: str
    selection: tuple[str, ...]
    partition_key: str | None
    labels: Mapping[str, str]
    item_id: str | None


def _item_source(item_id: str | None) -> dict[str, str]:
    if item_id is None:
        return {}
    kind, _, rest = item_id.partition(":")
    return {"message_id": rest} if kind == "msg" else {"run_id": rest} if kind == "run" else {}


def _partition_key(value: object, dimensions: Sequence[Mapping[str, Any]], now_s: int) -> str | None:
    if value is None:
        if dimensions:
            raise ValueError("the target is partitioned: a partition key is needed")
        return None
    if isinstance(value, Mapping):
        try:
            return tick_partition_key(normalize_partition_rule(dict(value)), dimensions, now_s)
        except InvalidSchedule as exc:
            raise ValueError(exc.message) from None
    if not isinstance(value, str):
        raise ValueError(f"must be a canonical key or a mapping per dimension, not {value!r}")
    try:
        key = parse_partition_key(value)
    except InvalidPartitionKey as exc:
        raise ValueError(exc.message) from None
    names = {name for name, _ in key.dimensions}
    expected = {str(d.get("name")) for d in dimensions}
    if names != expected:
        raise ValueError(f"dimensions {sorted(names)} do not match the target's {sorted(expected)}")
    return key.render()


def check_result_requests(
    spec: SensorSpec,
    evaluation_id_: str,
    state_version: int,
    requests: Sequence[Mapping[str, Any]],
    dimensions: Sequence[Mapping[str, Any]],
    *,
    now_s: int,
    item_ids: Sequence[str] = (),
) -> list[ResultRequest]:
    """Check a result's ``runRequests`` against the definition (§6.2) and derive their keys and ids.

    ``requests`` are the wire form ``{runKey, assetSelection, partitionKey, labels, itemId}``;
    ``dimensions`` the target's shared partition dimensions (manifest form); ``item_ids`` the items the
    evaluation was given (an ``itemId`` must be one of them).

    Raises:
        InvalidSensor: every breaking request named (index and reason) in one message and in
            ``details["requests"]``: the evaluation is then recorded ERROR with that message.
    """
    if len(requests) > MAX_RUN_REQUESTS:
        raise _error(
            "runRequests", f"{len(requests)} run requests; at most {MAX_RUN_REQUESTS} per evaluation"
        )
    problems: list[dict[str, Any]] = []
    checked: list[ResultRequest] = []
    target = spec.target or ()
    per_item: dict[object, int] = {}  # a push or run item numbers its own requests: msg:{m}:0 is stable
    for index, raw in enumerate(requests):
        item = raw.get("itemId") if isinstance(raw, Mapping) else None
        nth = per_item[item] = per_item.get(item, -1) + 1
        try:
            if not isinstance(raw, Mapping):
                raise ValueError(f"must be an object, not {raw!r}")
            if item is not None and item not in item_ids:
                raise ValueError(f"itemId {item!r} is not an item of this evaluation")
            request = _check_request(spec, state_version, nth, raw, target, dimensions, now_s)
            checked.append(replace(request, request_id=evaluation_request_id(evaluation_id_, index)))
        except ValueError as exc:
            problems.append({"index": index, "reason": str(exc)})
    if problems:
        text = "; ".join(f"runRequests[{p['index']}]: {p['reason']}" for p in problems)
        raise InvalidSensor(text, details={"field": "runRequests", "requests": problems})
    return checked


def _check_request(
    spec: SensorSpec,
    state_version: int,
    index: int,
    raw: Mapping[str, Any],
    target: tuple[str, ...],
    dimensions: Sequence[Mapping[str, Any]],
    now_s: int,
) -> ResultRequest:
    if not target:
        raise ValueError(f"sensor {spec.sensor_id} has no target: it cannot request runs")
    selection_raw = raw.get("assetSelection")
    try:
        selection = tuple(canonical_selection(selection_raw)) if selection_raw is not None else target
    except (InvalidAssetKey, TypeError) as exc:
        raise ValueError(f"assetSelection: {exc}") from None
    outside = [key for key in selection if key not in target]
    if outside or not selection:
        raise ValueError(f"assetSelection {list(outside or selection)} is outside the target {list(target)}")
    labels = raw.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ValueError(f"labels must map strings to strings, not {labels!r}")
    reserved = reserved_labels(labels)
    if reserved:
        raise ValueError(f"labels {', '.join(reserved)}: the servo. prefix is reserved")
    try:
        partition_key = _partition_key(raw.get("partitionKey"), dimensions, now_s)
    except ValueError as exc:
        raise ValueError(f"partitionKey: {exc}") from None
    item_id = raw.get("itemId")
    if item_id is not None and not isinstance(item_id, str):
        raise ValueError(f"itemId must be a string, not {item_id!r}")
    user_key = raw.get("runKey")
    if user_key is not None and not isinstance(user_key, str):
        raise ValueError(f"runKey must be a string, not {user_key!r}")
    try:
        run_key = sensor_run_key(
            spec.sensor_id, index, run_key=user_key, state_version=state_version, **_item_source(item_id)
        )
    except InvalidInput as exc:
        raise ValueError(exc.message) from None
    return ResultRequest(
        request_id="",
        run_key=run_key,
        selection=selection,
        partition_key=partition_key,
        labels=canonical_labels(labels),
        item_id=item_id,
    )
