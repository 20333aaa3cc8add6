"""Task tokens: HS256 JWTs scoped to one task attempt (design §7, contracts §10, behavior §6).

A token names the task (``ct1_`` taskId), tenant, workspace, run, attempt and attempt id it may act on;
the callback handler verifies it, then checks that scope against the task's current row, so a token for
one task/attempt can never act on another. The clock is always passed in: PyJWT's own time checks read
the wall clock, so they are switched off and the window is checked here against ``now_s``.

Keys rotate: a token's header names its key (``kid``, a fingerprint of the key), and the verifier is
given every key still accepted (the current one and, during a rotation, the previous one).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt

from servo.core.errors import InvalidInput, InvalidTaskId, Unauthorized
from servo.core.keys import decode_task_id

ALGORITHM = "HS256"
DEFAULT_TTL_S = 3600
# A token must outlive the attempt it authorises, with slack for the final /completed call.
TTL_SLACK_S = 300
# The longest attempt timeout a manifest may carry (7 days, as the SDK and deploy accept) plus the
# slack: a lower cap left such a task READY for ever, every dispatch failing to sign its token. A
# long lifetime opens nothing: the callbacks refuse a token whose attempt is no longer current.
MAX_TTL_S = 7 * 86_400 + TTL_SLACK_S
# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32

# Wire (camelCase) claim name -> snake_case alias also accepted on read.
_SCOPE_CLAIMS: tuple[tuple[str, str], ...] = (
    ("taskId", "task_id"),
    ("tenantId", "tenant_id"),
    ("workspaceId", "workspace_id"),
    ("runId", "run_id"),
    ("attempt", "attempt"),
    ("attemptId", "attempt_id"),
)
_INT_CLAIMS = frozenset({"attempt", "exp", "nbf", "iat"})
# Only the signature is left to PyJWT; every claim check is ours so the injected clock is used.
_PYJWT_OPTIONS: Any = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}


@dataclass(frozen=True, slots=True)
class TaskTokenClaims:
    """The verified claims of a task token; times are Unix seconds."""

    task_id: str
    tenant_id: str
    workspace_id: str
    run_id: str
    attempt: int
    attempt_id: str
    exp: int
    nbf: int
    iat: int
    iss: str | None = None
    aud: str | None = None


def min_ttl_for(timeout_s: int | None) -> int:
    """The shortest TTL a token for a task with this attempt timeout may have (timeout + 300 s)."""
    return (timeout_s or 0) + TTL_SLACK_S


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise InvalidInput(f"task token secret must be at least {MIN_SECRET_BYTES} bytes")


def key_id(secret: bytes) -> str:
    """The ``kid`` naming a key: 64 bits of its SHA-256, enough to tell keys apart, useless to guess it."""
    return hashlib.sha256(secret).hexdigest()[:16]


def issue_task_token(
    secret: bytes,
    *,
    task_id: str,
    tenant_id: str,
    workspace_id: str,
    run_id: str,
    attempt: int,
    attempt_id: str,
    now_s: int,
    ttl_s: int = DEFAULT_TTL_S,
    timeout_s: int | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    issued_s: int | None = None,
) -> tuple[str, int]:
    """Sign a token for one task attempt.

    Args:
        secret: the HS256 signing secret (≥ 32 bytes).
        task_id: the ``ct1_`` callback taskId.
        tenant_id: tenant scope.
        workspace_id: workspace scope.
        run_id: run scope.
        attempt: the attempt number (≥ 1).
        attempt_id: the attempt id.
        now_s: the current time, Unix seconds; becomes ``iat`` and ``nbf``.
        ttl_s: lifetime in seconds (default 3600, at most ``MAX_TTL_S``).
        timeout_s: the task's attempt timeout; when given, ``ttl_s`` must be ≥ ``min_ttl_for(timeout_s)``.
        issuer: optional ``iss`` claim.
        audience: optional ``aud`` claim.
        issued_s: ``iat`` when it is not ``now_s``: the attempt's dispatch time on a token issued
            again for the same attempt (a repaired delivery), so every report of the attempt carries it.

    Returns:
        ``(token, expires_at)`` with ``expires_at`` in Unix seconds.

    Raises:
        InvalidInput: a short secret, a TTL out of bounds, or a malformed scope value.
    """
    _check_secret(secret)
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 0 < ttl_s <= MAX_TTL_S:
        raise InvalidInput(f"token ttl must be an integer in 1..{MAX_TTL_S} seconds, got {ttl_s!r}")
    if timeout_s is not None and ttl_s < min_ttl_for(timeout_s):
        raise InvalidInput(
            f"token ttl {ttl_s}s must be at least {min_ttl_for(timeout_s)}s (task timeout {timeout_s}s + "
            f"{TTL_SLACK_S}s)"
        )
    decode_task_id(task_id)
    for name, value in (
        ("tenant_id", tenant_id),
        ("workspace_id", workspace_id),
        ("run_id", run_id),
        ("attempt_id", attempt_id),
    ):
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"token {name} must be a non-empty string, got {value!r}")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise InvalidInput(f"token attempt must be an integer ≥ 1, got {attempt!r}")
    expires_at = now_s + ttl_s
    payload: dict[str, Any] = {
        "taskId": task_id,
        "tenantId": tenant_id,
        "workspaceId": workspace_id,
        "runId": run_id,
        "attempt": attempt,
        "attemptId": attempt_id,
        "iat": now_s if issued_s is None else issued_s,
        "nbf": now_s,
        "exp": expires_at,
    }
    if issuer is not None:
        payload["iss"] = issuer
    if audience is not None:
        payload["aud"] = audience
    return _sign(payload, secret), expires_at


def _invalid(reason: str, **details: Any) -> Unauthorized:
    return Unauthorized(f"invalid_token: {reason}", details={"error": "invalid_token", **details})


def _claim(payload: Mapping[str, Any], wire: str, alias: str) -> Any:
    value = payload.get(wire, payload.get(alias))
    if value is None:
        raise _invalid(f"missing claim {wire}", claim=wire)
    if wire in _INT_CLAIMS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(f"claim {wire} must be an integer", claim=wire)
    elif not isinstance(value, str) or not value:
        raise _invalid(f"claim {wire} must be a non-empty string", claim=wire)
    return value


def _optional_str(payload: Mapping[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, str):
        raise _invalid(f"claim {name} must be a string", claim=name)
    return value


def _candidate_keys(keys: Sequence[bytes], header: Mapping[str, Any]) -> list[bytes]:
    """The key the token names, or every key for a token minted before key ids existed."""
    kid = header.get("kid")
    if kid is None:
        return list(keys)
    named = [k for k in keys if key_id(k) == kid]
    if not named:
        raise _invalid("signature verification failed: unknown key id (a retired key?)", kid=str(kid))
    return named


def verify_task_token(
    secret: bytes | Sequence[bytes],
    token: str,
    now_s: int,
    *,
    issuer: str | None = None,
    audience: str | None = None,
    leeway_s: int = 0,
) -> TaskTokenClaims:
    """Verify a task token's signature, algorithm, time window and claims.

    Args:
        secret: the HS256 signing secret, or every accepted key (current first) during a rotation.
        token: the compact JWT (without ``Bearer``).
        now_s: the current time, Unix seconds.
        issuer: when given, ``iss`` must equal it.
        audience: when given, ``aud`` must equal it.
        leeway_s: clock-skew allowance applied to ``exp`` and ``nbf``.

    Returns:
        The claims, camelCase or snake_case aliases accepted.

    Raises:
        Unauthorized: ``invalid_token: …`` for any failure.
    """
    signed = _signed([secret] if isinstance(secret, bytes) else list(secret), token)
    claims = signed.claims
    if claims is None:
        # A token's claims follow from its payload, so they are read once per token; its time window
        # is checked on every use (the first time inside _task_claims, in the order of its refusals).
        claims = signed.claims = _task_claims(signed.payload, now_s, leeway_s)
    else:
        _check_window(claims.exp, claims.nbf, now_s, leeway_s)
    if issuer is not None and claims.iss != issuer:
        raise _invalid(f"claim iss must be {issuer!r}", claim="iss")
    if audience is not None and claims.aud != audience:
        raise _invalid(f"claim aud must be {audience!r}", claim="aud")
    return claims


def _task_claims(payload: Mapping[str, Any], now_s: int, leeway_s: int) -> TaskTokenClaims:
    task_id, tenant_id, workspace_id, run_id, attempt, attempt_id = (
        _claim(payload, wire, alias) for wire, alias in _SCOPE_CLAIMS
    )
    exp, nbf, iat = (_claim(payload, name, name) for name in ("exp", "nbf", "iat"))
    try:
        decode_task_id(task_id)
    except InvalidTaskId as exc:
        raise _invalid(f"claim taskId is not a ct1_ task id ({exc.message})", claim="taskId") from exc
    if attempt < 1:
        raise _invalid("claim attempt must be ≥ 1", claim="attempt")
    _check_window(exp, nbf, now_s, leeway_s)
    return TaskTokenClaims(
        task_id=task_id,
        tenant_id=tenant_id,
        workspace_id=workspace_id,
        run_id=run_id,
        attempt=attempt,
        attempt_id=attempt_id,
        exp=exp,
        nbf=nbf,
        iat=iat,
        iss=_optional_str(payload, "iss"),
        aud=_optional_str(payload, "aud"),
    )


def _check_window(exp: int, nbf: int, now_s: int, leeway_s: int) -> None:
    if now_s >= exp + leeway_s:
        raise _invalid("token expired", exp=exp)
    if now_s < nbf - leeway_s:
        raise _invalid("token not yet valid", nbf=nbf)


def _signed_payload(keys: list[bytes], token: object) -> dict[str, Any]:
    """The payload of an HS256 token signed by one of ``keys`` (task and evaluation tokens alike).

    Raises:
        InvalidInput: no key, or a key too short (a deployment error, not the caller's).
        Unauthorized: missing, malformed, another algorithm or a bad signature.
    """
    return dict(_signed(keys, token).payload)


@dataclass(slots=True)
class _Signed:
    """What is known of one exact token: the key that signed it, its payload, and (once read) its
    task claims. Only a signature is known here, never a verdict on time, issuer or scope."""

    key: bytes
    payload: Mapping[str, Any]
    claims: TaskTokenClaims | None = None


class _SignedTokens:
    """The last ``size`` tokens whose signature is known, by exact token string: each callback of an
    attempt (started, heartbeats, logs, completed) brings the same token, and checking it costs about
    0.25 ms of PyJWT. A token this process signed is known from the start (the embedded stack's
    controller and callbacks share a process). It counts only while its key is still accepted;
    refusals are never kept. The oldest goes first: a token is used soon after it is signed, and one
    forgotten is only checked by PyJWT again."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()  # for writers; a read of one dict entry needs none
        self._kept: dict[str, _Signed] = {}

    def get(self, token: str, keys: Sequence[bytes]) -> _Signed | None:
        known = self._kept.get(token)
        return known if known is not None and known.key in keys else None

    def keep(self, token: str, signed: _Signed) -> None:
        with self._lock:
            self._kept[token] = signed
            if len(self._kept) > self._size:
                del self._kept[next(iter(self._kept))]


VERIFIED_TOKENS_KEPT = 4096
_SIGNED = _SignedTokens(VERIFIED_TOKENS_KEPT)


def _signed(keys: list[bytes], token: object) -> _Signed:
    """``token`` with the key among ``keys`` that signed it (see _signed_payload)."""
    if not keys:
        raise InvalidInput(f"at least one task token key of {MIN_SECRET_BYTES} bytes is needed")
    for key in keys:
        _check_secret(key)
    if not isinstance(token, str) or not token:
        raise _invalid("missing token")
    known = _SIGNED.get(token, keys)
    if known is not None:
        return known
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _invalid(f"malformed token ({exc})") from exc
    # Checked before PyJWT so `none` and other algorithms get a precise message, not a generic failure.
    if header.get("alg") != ALGORITHM:
        raise _invalid(f"algorithm must be {ALGORITHM}, got {header.get('alg')!r}")
    key, payload = _decode(token, _candidate_keys(keys, header))
    signed = _Signed(key, MappingProxyType(payload))
    _SIGNED.keep(token, signed)
    return signed


def _sign(payload: dict[str, Any], secret: bytes) -> str:
    """``payload`` signed with ``secret``, known as signed from now on (what PyJWT would decode)."""
    token = jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"kid": key_id(secret)})
    _SIGNED.keep(token, _Signed(secret, MappingProxyType(dict(payload))))
    return token


def _decode(token: str, keys: list[bytes]) -> tuple[bytes, dict[str, Any]]:
    for key in keys:
        try:
            decoded: dict[str, Any] = jwt.decode(token, key, algorithms=[ALGORITHM], options=_PYJWT_OPTIONS)
            return key, decoded
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise _invalid(f"malformed token ({exc})") from exc
    raise _invalid("signature verification failed")


def check_token_scope(
    claims: TaskTokenClaims,
    *,
    task_id: str,
    tenant_id: str,
    workspace_id: str,
    run_id: str,
    attempt: int,
    attempt_id: str,
) -> None:
    """Require the token to be scoped to exactly this task attempt (the task's current row).

    Raises:
        Unauthorized: ``invalid_token: …`` naming the first field that differs (``details['field']``).
    """
    expected = {
        "task_id": task_id,
        "tenant_id": tenant_id,
        "workspace_id": workspace_id,
        "run_id": run_id,
        "attempt": attempt,
        "attempt_id": attempt_id,
    }
    for field, value in expected.items():
        if getattr(claims, field) != value:
            raise _invalid(f"token is not scoped to this task ({field} differs)", field=field)


# ------------------------------------------------------------------------------- sensor evaluations

EVALUATION_SCOPE = "sensor_evaluation"


def issue_evaluation_token(
    secret: bytes,
    *,
    tenant_id: str,
    workspace_id: str,
    sensor_id: str,
    evaluation_id: str,
    state_version: int,
    now_s: int,
    timeout_s: int,
) -> str:
    """Sign the token of one sensor evaluation (automation §6.2): valid on that evaluation's own result
    path only, for its timeout + 300 s."""
    _check_secret(secret)
    payload = {
        "scope": EVALUATION_SCOPE,
        "tenantId": tenant_id,
        "workspaceId": workspace_id,
        "sensorId": sensor_id,
        "evaluationId": evaluation_id,
        "stateVersion": state_version,
        "iat": now_s,
        "nbf": now_s,
        "exp": now_s + timeout_s + TTL_SLACK_S,
    }
    return _sign(payload, secret)


def verify_evaluation_token(
    keys: Sequence[bytes], token: str, now_s: int, evaluation_id: str
) -> dict[str, Any]:
    """The claims of an evaluation token scoped to ``evaluation_id``.

    Raises:
        Unauthorized: a bad signature or algorithm, expired, another scope (a task token) or another
            evaluation's token.
    """
    payload = _signed_payload(list(keys), token)
    if payload.get("scope") != EVALUATION_SCOPE:
        raise _invalid("not a sensor evaluation token", claim="scope")
    if payload.get("evaluationId") != evaluation_id:
        raise _invalid("token is not scoped to this evaluation", claim="evaluationId")
    exp, nbf = payload.get("exp"), payload.get("nbf")
    if not isinstance(exp, int) or not isinstance(nbf, int) or not nbf <= now_s < exp:
        raise _invalid("token expired or not yet valid", claim="exp")
    return payload
