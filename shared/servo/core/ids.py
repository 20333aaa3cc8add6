"""Identifier wire formats (contracts §5): ULIDs, dispatch/attempt/timer ids, Cloud Task names, run ids.

Everything is deterministic from its inputs; randomness and time are injected so ids are replayable in tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from ulid import base32

from servo.core.errors import InvalidId, ServoError

# ---------------------------------------------------------------------------------------------- ULID

_ULID_RE = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
_MAX_ULID_MS = 2**48 - 1
_MAX_RANDOMNESS = 2**80 - 1


class UlidFactory:
    """Monotonic ULID generator; time and randomness are passed in.

    Within one millisecond (or if the clock steps back) the previous randomness is incremented, per the
    ULID spec, so ids from one factory sort in creation order.
    """

    __slots__ = ("_last_ms", "_last_random", "_random_bytes")

    def __init__(self, random_bytes: Callable[[int], bytes]) -> None:
        self._random_bytes = random_bytes
        self._last_ms = -1
        self._last_random = 0

    def new(self, now_ms: int) -> str:
        """A new ULID for ``now_ms``, strictly greater than every ULID this factory made before."""
        if not isinstance(now_ms, int) or isinstance(now_ms, bool) or not 0 <= now_ms <= _MAX_ULID_MS:
            raise InvalidId(f"ULID time {now_ms!r} must be an int in 0..2^48-1 ms")
        if now_ms <= self._last_ms:
            if self._last_random == _MAX_RANDOMNESS:
                raise ServoError("ULID randomness exhausted within one millisecond")
            ms, randomness = self._last_ms, self._last_random + 1
        else:
            raw = self._random_bytes(10)
            if not isinstance(raw, bytes) or len(raw) != 10:
                raise ServoError("random_bytes(10) must return exactly 10 bytes")
            ms, randomness = now_ms, int.from_bytes(raw, "big")
        self._last_ms, self._last_random = ms, randomness
        return ulid_text(ms, randomness)


def ulid_text(ms: int, randomness: int) -> str:
    """The ULID of 48 bits of time and 80 of randomness (both in range), as 26 Crockford digits.

    python-ulid's own encoder, called without building a ULID object first (every event id and every
    attempt's ids are made here: the object cost about a quarter of an id)."""
    return base32.encode(ms.to_bytes(6, "big") + randomness.to_bytes(10, "big"))


def is_ulid(s: object) -> bool:
    """True iff ``s`` is a 26-character uppercase Crockford-base32 ULID."""
    return isinstance(s, str) and _ULID_RE.fullmatch(s) is not None


def validate_ulid(s: str) -> str:
    """Return ``s`` if it is a ULID, else raise InvalidId."""
    if not is_ulid(s):
        raise InvalidId(
            f"invalid ULID {s!r}: expected 26 uppercase Crockford base32 characters", details={"id": s}
        )
    return s


# Crockford's base-32 digits mapped to the ones int(x, 32) reads: the compactor takes the time of
# every id it folds, and parsing a whole ULID object for 10 characters cost ~0.1 ms each.
_CROCKFORD_TO_INT32 = str.maketrans("ABCDEFGHJKMNPQRSTVWXYZ", "abcdefghijklmnopqrstuv")


def ulid_time_ms(s: str) -> int:
    """The millisecond timestamp encoded in a ULID (its first 10 characters)."""
    return int(validate_ulid(s)[:10].translate(_CROCKFORD_TO_INT32), 32)


# ---------------------------------------------------------------------------------------------- helpers


def b32_lower(digest: bytes) -> str:
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def sha256_bytes(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _id_part(value: object, what: str) -> str:
    # Parts of ':'-joined ids must not contain ':' or the id stops being parseable.
    if not isinstance(value, str) or not value or ":" in value or _has_control(value):
        raise InvalidId(f"invalid {what} {value!r}: must be non-empty, without ':' or control characters")
    return value


def _attempt(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidId(f"invalid attempt {value!r}: must be an int >= 1")
    return value


_DECIMAL_RE = re.compile(r"0|[1-9][0-9]*")


def _parse_decimal(text: str, what: str, whole: str) -> int:
    if not _DECIMAL_RE.fullmatch(text):
        raise InvalidId(f"invalid id {whole!r}: {what} {text!r} is not a canonical decimal")
    return int(text)


# Unicode category Cc, which the stability policy keeps at exactly these 65 code points: one regex
# search instead of a category lookup per character of every id the fold builds.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")


def _has_control(s: str) -> bool:
    return _CONTROL_RE.search(s) is not None


# ---------------------------------------------------------------------------------------------- dispatch


def dispatch_id(run_id: str, task_key: str, attempt: int) -> str:
    """``dispatch:{run_id}:{task_key}:{attempt}`` (attempt ≥ 1)."""
    return f"dispatch:{_id_part(run_id, 'run_id')}:{_id_part(task_key, 'task_key')}:{_attempt(attempt)}"


def parse_dispatch_id(s: str) -> tuple[str, str, int]:
    """Split a dispatch id into ``(run_id, task_key, attempt)``."""
    parts = s.split(":") if isinstance(s, str) else []
    if len(parts) != 4 or parts[0] != "dispatch":
        raise InvalidId(f"invalid dispatch id {s!r}: expected dispatch:{{run}}:{{task}}:{{attempt}}")
    _, run_id, task_key, attempt_text = parts
    attempt = _parse_decimal(attempt_text, "attempt", s)
    return _id_part(run_id, "run_id"), _id_part(task_key, "task_key"), _attempt(attempt)


def attempt_id(dispatch_id: str) -> str:
    """``att_`` + hex(sha256(``attempt:`` + dispatch_id))[:24]."""
    if not isinstance(dispatch_id, str) or not dispatch_id:
        raise InvalidId(f"invalid dispatch id {dispatch_id!r}")
    return "att_" + sha256_bytes("attempt:" + dispatch_id).hex()[:24]


def cloud_task_id(internal_id: str) -> str:
    """The Cloud Tasks task name: ``d_``/``t_`` + lower(b32(sha256(internal_id)))[:26]."""
    if isinstance(internal_id, str) and internal_id.startswith("dispatch:"):
        prefix = "d_"
    elif isinstance(internal_id, str) and internal_id.startswith("timer:"):
        prefix = "t_"
    else:
        raise InvalidId(f"invalid internal id {internal_id!r}: expected a dispatch: or timer: id")
    return prefix + b32_lower(sha256_bytes(internal_id))[:26]


# ---------------------------------------------------------------------------------------------- timers

TIMER_KINDS: tuple[str, ...] = ("retry", "heartbeat", "sla")


@dataclass(frozen=True, slots=True)
class TimerIdParts:
    """A parsed timer id. Cron timers carry ``schedule_id`` and no run/task/attempt."""

    kind: str
    run_id: str | None
    task_key: str | None
    attempt: int | None
    epoch_s: int
    schedule_id: str | None = None


def _epoch(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidId(f"invalid epoch seconds {value!r}: must be an int >= 0")
    return value


def timer_id(kind: str, run_id: str, task_key: str, attempt: int, epoch_s: int) -> str:
    """``timer:{kind}:{run}:{task}:{attempt}:{epoch_s}`` with kind ∈ retry|heartbeat|sla."""
    if kind not in TIMER_KINDS:
        raise InvalidId(f"invalid timer kind {kind!r}: expected one of {', '.join(TIMER_KINDS)}")
    run, task = _id_part(run_id, "run_id"), _id_part(task_key, "task_key")
    return f"timer:{kind}:{run}:{task}:{_attempt(attempt)}:{_epoch(epoch_s)}"


def cron_timer_id(schedule_id: str, epoch_s: int) -> str:
    """``timer:cron:{schedule_id}:{epoch_s}``."""
    return f"timer:cron:{_id_part(schedule_id, 'schedule_id')}:{_epoch(epoch_s)}"


def parse_timer_id(s: str) -> TimerIdParts:
    """Parse any timer id form (retry, heartbeat, sla, cron)."""
    parts = s.split(":") if isinstance(s, str) else []
    if len(parts) == 4 and parts[:2] == ["timer", "cron"]:
        return TimerIdParts(
            "cron", None, None, None, _parse_decimal(parts[3], "epoch", s), _id_part(parts[2], "schedule_id")
        )
    if len(parts) != 6 or parts[0] != "timer" or parts[1] not in TIMER_KINDS:
        raise InvalidId(
            f"invalid timer id {s!r}: expected timer:{{kind}}:{{run}}:{{task}}:{{attempt}}:{{epoch}}"
        )
    _, kind, run_id, task_key, attempt_text, epoch_text = parts
    return TimerIdParts(
        kind,
        _id_part(run_id, "run_id"),
        _id_part(task_key, "task_key"),
        _attempt(_parse_decimal(attempt_text, "attempt", s)),
        _parse_decimal(epoch_text, "epoch", s),
    )


# ---------------------------------------------------------------------------------------------- runs


def automation_run_id(secret: bytes, tenant: str, workspace: str, run_key: str) -> str:
    """``run_`` + lower(b32(HMAC-SHA256(secret, ``{tenant}:{workspace}:{run_key}``)[:16]))[:26]."""
    if not isinstance(secret, bytes):
        raise InvalidId("automation run id secret must be bytes (may be empty)")
    mac = hmac.new(secret, f"{tenant}:{workspace}:{run_key}".encode(), hashlib.sha256).digest()
    return "run_" + b32_lower(mac[:16])[:26]


MAX_RUN_KEY_BYTES = 256


def run_key_object_name(run_key: str) -> str:
    """``run_keys/{hex(sha256(run_key))[:40]}.json`` (the run_key is 1..256 bytes)."""
    if not isinstance(run_key, str) or not run_key or len(run_key.encode("utf-8")) > MAX_RUN_KEY_BYTES:
        raise InvalidId(f"invalid run_key {run_key!r}: must be 1..{MAX_RUN_KEY_BYTES} bytes")
    return f"run_keys/{sha256_bytes(run_key).hex()[:40]}.json"


def manifest_id(n: int) -> str:
    """A 20-digit zero-padded decimal manifest id."""
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < 10**20:
        raise InvalidId(f"invalid manifest number {n!r}: must be an int in 0..10^20-1")
    return f"{n:020d}"


_MANIFEST_ID_RE = re.compile(r"[0-9]{20}")


def parse_manifest_id(s: str) -> int:
    """The number inside a 20-digit manifest id."""
    if not isinstance(s, str) or not _MANIFEST_ID_RE.fullmatch(s):
        raise InvalidId(f"invalid manifest id {s!r}: expected 20 decimal digits")
    return int(s)


# ---------------------------------------------------------------------------------------------- paths

_SCOPE_RE = re.compile(r"[a-z0-9_-]+")
MAX_SCOPE_LEN = 63


def validate_scope_id(s: str, what: str) -> str:
    """Return ``s`` if it is a tenant/workspace id: ``[a-z0-9_-]+``, at most 63 characters."""
    if not isinstance(s, str) or not _SCOPE_RE.fullmatch(s) or len(s) > MAX_SCOPE_LEN:
        raise InvalidId(
            f"invalid {what} {s!r}: must match [a-z0-9_-]+ and be at most {MAX_SCOPE_LEN} characters",
            details={what: s},
        )
    return s


# Bookkeeping at the bucket root (the sweep's registry of workspaces) lives under this first path
# segment, where a tenant's objects would live if a tenant had this id: so no tenant may.
INTERNAL_ROOT = "_servo"


def validate_tenant_id(s: str) -> str:
    """Return ``s`` if it is a tenant id: a scope id other than the reserved :data:`INTERNAL_ROOT`."""
    validate_scope_id(s, "tenant")
    if s == INTERNAL_ROOT:
        raise InvalidId(f"tenant {s!r} is reserved for Servo's own bookkeeping", details={"tenant": s})
    return s


def validate_path_component(s: str, what: str, max_len: int = 256) -> str:
    """Return ``s`` if it is safe as one storage path component (design §7).

    Rejects empty, ``.``, anything containing ``..``, ``/``, ``\\``, ``%`` or a control character, and
    anything longer than ``max_len`` UTF-8 bytes.
    """
    reason: str | None = None
    if not isinstance(s, str) or not s:
        reason = "must be a non-empty string"
    elif len(s.encode("utf-8", "surrogatepass")) > max_len:
        reason = f"must be at most {max_len} bytes"
    elif s == "." or ".." in s:
        reason = "must not be '.' or contain '..'"
    elif any(ch in s for ch in "/\\%"):
        reason = "must not contain '/', '\\' or '%'"
    elif _has_control(s) or any(unicodedata.category(ch) == "Cs" for ch in s):
        reason = "must not contain control characters"
    if reason:
        raise InvalidId(f"invalid {what} {s!r}: {reason}", details={what: s})
    return s
