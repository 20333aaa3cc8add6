"""Keys: AssetKey (contracts §2), task keys and the ct1_ callback taskId (§4).

Every parser here is strict and raises a typed error naming the bad input; every renderer produces the one
canonical form, so ``render(parse(x)) == x`` is the test for canonical input. PartitionKey (§3) lives in
``partition_keys`` and is re-exported here, as are the base64url helpers, so older imports keep working.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from servo.core._key_text import IDENT, IDENT_RE, b64u_decode_strict, b64u_encode
from servo.core.errors import InvalidAssetKey, InvalidTaskId
from servo.core.partition_keys import (
    I64_MAX,
    I64_MIN,
    MAX_PARTITION_KEY_LEN,
    PartitionKey,
    PartitionScalar,
    PartitionTag,
    PartitionValue,
    parse_partition_key,
    parse_partition_key_proto,
    partition_id,
    require_canonical_partition_key,
)

__all__ = [
    "I64_MAX",
    "I64_MIN",
    "MAX_ASSET_KEY_BYTES",
    "MAX_PARTITION_KEY_LEN",
    "MAX_SELECTION_ITEMS",
    "TASK_ID_PREFIX",
    "TASK_OPS",
    "AssetKey",
    "PartitionKey",
    "PartitionScalar",
    "PartitionTag",
    "PartitionValue",
    "TaskOp",
    "b64u_decode_strict",
    "b64u_encode",
    "canonical_asset_key",
    "canonical_selection",
    "decode_task_id",
    "encode_task_id",
    "parse_partition_key",
    "parse_partition_key_proto",
    "partition_id",
    "planner_task_key",
    "require_canonical_partition_key",
    "validate_task_key",
]

_NAME_RE = re.compile(rf"{IDENT}(?:\.{IDENT})*")
_WHITESPACE_RE = re.compile(r"\s")

MAX_ASSET_KEY_BYTES = 256
MAX_SELECTION_ITEMS = 10_000

# ---------------------------------------------------------------------------------------------- AssetKey


def _bad_asset_key(raw: object, reason: str) -> InvalidAssetKey:
    return InvalidAssetKey(f"invalid asset key {raw!r}: {reason}", details={"asset_key": raw})


@dataclass(frozen=True, slots=True)
class AssetKey:
    """An asset key: ``namespace`` plus a dot-separated ``name``.

    ``str(key)`` is the orchestration (wire) form ``ns.name``; ``key.planner`` is ``ns/name``.
    """

    namespace: str
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.namespace, str) or not IDENT_RE.fullmatch(self.namespace):
            raise _bad_asset_key(self.namespace, "namespace must match [a-z][a-z0-9_]*")
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise _bad_asset_key(self.name, "name must be '.'-separated segments matching [a-z][a-z0-9_]*")
        if len(str(self).encode("utf-8")) > MAX_ASSET_KEY_BYTES:
            raise _bad_asset_key(str(self), f"longer than {MAX_ASSET_KEY_BYTES} bytes")

    @classmethod
    def parse(cls, s: str) -> AssetKey:
        """Parse ``ns/name`` or ``ns.name`` (split at the first ``/`` if any, else the first ``.``).

        Raises:
            InvalidAssetKey: empty, whitespace, too long, or a namespace/segment not ``[a-z][a-z0-9_]*``.
        """
        if not isinstance(s, str):
            raise _bad_asset_key(s, "must be a string")
        if not s:
            raise _bad_asset_key(s, "must not be empty")
        if _WHITESPACE_RE.search(s):
            raise _bad_asset_key(s, "must not contain whitespace")
        if len(s.encode("utf-8")) > MAX_ASSET_KEY_BYTES:
            raise _bad_asset_key(s, f"longer than {MAX_ASSET_KEY_BYTES} bytes")
        sep = "/" if "/" in s else "."
        namespace, found, name = s.partition(sep)
        if not found:
            raise _bad_asset_key(s, "expected 'namespace.name' or 'namespace/name'")
        if not IDENT_RE.fullmatch(namespace):
            raise _bad_asset_key(s, "namespace must match [a-z][a-z0-9_]*")
        if not _NAME_RE.fullmatch(name):
            raise _bad_asset_key(s, "name must be '.'-separated segments matching [a-z][a-z0-9_]*")
        return cls(namespace, name)

    def __str__(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def planner(self) -> str:
        """The planner rendering ``ns/name`` (ADR-012), used only in planner TaskKeys."""
        return f"{self.namespace}/{self.name}"


def canonical_asset_key(s: str) -> str:
    """The wire form ``ns.name`` of an asset key given as ``ns/name`` or ``ns.name``."""
    return str(AssetKey.parse(s))


def canonical_selection(items: Iterable[str]) -> list[str]:
    """Canonicalize, de-duplicate and byte-sort a selection of asset keys (≤ 10,000 items)."""
    items = list(items)
    if len(items) > MAX_SELECTION_ITEMS:
        raise InvalidAssetKey(
            f"selection has {len(items)} asset keys; at most {MAX_SELECTION_ITEMS} are allowed",
            details={"count": len(items)},
        )
    return sorted({canonical_asset_key(item) for item in items}, key=lambda k: k.encode("utf-8"))


# ---------------------------------------------------------------------------------------------- task keys

TaskOp = Literal["materialize", "check", "backfill"]
TASK_OPS: tuple[str, ...] = ("materialize", "check", "backfill")  # index = rank


def planner_task_key(asset: AssetKey, partition_key: str | None, op: str = "materialize") -> str:
    """The planner TaskKey ``ns/name[pk]:op`` (``ns/name:op`` when unpartitioned), contracts §4b."""
    if op not in TASK_OPS:
        raise InvalidTaskId(f"invalid task op {op!r}: expected one of {', '.join(TASK_OPS)}")
    if not partition_key:
        return f"{asset.planner}:{op}"
    require_canonical_partition_key(partition_key)
    return f"{asset.planner}[{partition_key}]:{op}"


def validate_task_key(s: str) -> str:
    """Return ``s`` if it is a runtime task_key: a canonical dot asset key (so it never holds ``:``).

    Raises:
        InvalidTaskId: ``s`` is not exactly the canonical ``ns.name`` form.
    """
    if isinstance(s, str) and ":" in s:
        raise InvalidTaskId(f"invalid task_key {s!r}: must not contain ':'", details={"task_key": s})
    try:
        canonical = canonical_asset_key(s)
    except InvalidAssetKey as exc:
        raise InvalidTaskId(f"invalid task_key {s!r}: {exc.message}", details={"task_key": s}) from exc
    if canonical != s:
        raise InvalidTaskId(
            f"invalid task_key {s!r}: expected the canonical form {canonical!r}", details={"task_key": s}
        )
    return s


TASK_ID_PREFIX = "ct1_"


def encode_task_id(run_id: str, task_key: str) -> str:
    """The callback taskId ``ct1_`` + b64u(run_id ‖ 0x00 ‖ task_key)."""
    for what, part in (("run_id", run_id), ("task_key", task_key)):
        if not isinstance(part, str) or not part or "\x00" in part:
            raise InvalidTaskId(f"cannot encode taskId: {what} {part!r} must be non-empty without NUL")
    return TASK_ID_PREFIX + b64u_encode(f"{run_id}\x00{task_key}".encode())


def decode_task_id(s: str) -> tuple[str, str]:
    """Decode a ``ct1_`` taskId into ``(run_id, task_key)``.

    Raises:
        InvalidTaskId: missing prefix, non-strict base64url, not exactly two non-empty UTF-8 parts.
    """
    if not isinstance(s, str) or not s.startswith(TASK_ID_PREFIX):
        raise InvalidTaskId(
            f"invalid taskId {s!r}: must start with {TASK_ID_PREFIX!r}", details={"task_id": s}
        )
    try:
        raw = b64u_decode_strict(s[len(TASK_ID_PREFIX) :])
    except ValueError as exc:
        raise InvalidTaskId(f"invalid taskId {s!r}: {exc}", details={"task_id": s}) from exc
    parts = raw.split(b"\x00")
    if len(parts) != 2 or not all(parts):
        raise InvalidTaskId(
            f"invalid taskId {s!r}: must hold exactly two non-empty parts", details={"task_id": s}
        )
    try:
        run_id, task_key = (part.decode("utf-8") for part in parts)
    except UnicodeDecodeError as exc:
        raise InvalidTaskId(f"invalid taskId {s!r}: parts are not UTF-8", details={"task_id": s}) from exc
    return run_id, task_key
