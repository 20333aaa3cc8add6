"""Task tokens (design §7, contracts §10, behavior §6): HS256 JWTs scoped to one task attempt."""

from __future__ import annotations

import base64
import dataclasses
import json

import jwt
import pytest
from servo.core.errors import InvalidInput, Unauthorized
from servo.tokens import (
    DEFAULT_TTL_S,
    MAX_TTL_S,
    TaskTokenClaims,
    check_token_scope,
    issue_task_token,
    min_ttl_for,
    verify_task_token,
)

SECRET = b"k" * 32
OTHER_SECRET = b"q" * 32
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
TASK_ID = "ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM"  # (run-123, analytics.daily_sales)
SCOPE = {
    "task_id": TASK_ID,
    "tenant_id": "tenant-a",
    "workspace_id": "workspace-b",
    "run_id": "run-123",
    "attempt": 1,
    "attempt_id": "att_d73e81338503cf766c5a9d17",
}


def _issue(**overrides: object) -> tuple[str, int]:
    kwargs: dict[str, object] = {**SCOPE, "now_s": NOW}
    kwargs.update(overrides)
    return issue_task_token(SECRET, **kwargs)  # type: ignore[arg-type]


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _hs256(payload: dict[str, object], secret: bytes = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def test_round_trip_returns_every_claim() -> None:
    token, expires_at = _issue(issuer="servo", audience="servo-callbacks")
    assert expires_at == NOW + DEFAULT_TTL_S
    claims = verify_task_token(SECRET, token, NOW + 10, issuer="servo", audience="servo-callbacks")
    assert claims == TaskTokenClaims(
        **SCOPE,  # type: ignore[arg-type]
        exp=NOW + DEFAULT_TTL_S,
        nbf=NOW,
        iat=NOW,
        iss="servo",
        aud="servo-callbacks",
    )
    check_token_scope(claims, **SCOPE)  # type: ignore[arg-type]


def test_wire_claims_are_camel_case_and_header_is_hs256() -> None:
    token, _ = _issue()
    payload = _payload(token)
    assert set(payload) == {
        "taskId",
        "tenantId",
        "workspaceId",
        "runId",
        "attempt",
        "attemptId",
        "exp",
        "nbf",
        "iat",
    }
    assert payload["taskId"] == TASK_ID
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_ttl_bounds() -> None:
    _, expires_at = _issue(ttl_s=MAX_TTL_S)
    assert expires_at == NOW + MAX_TTL_S
    with pytest.raises(InvalidInput, match="ttl"):
        _issue(ttl_s=MAX_TTL_S + 1)
    with pytest.raises(InvalidInput, match="ttl"):
        _issue(ttl_s=0)


def test_ttl_must_cover_task_timeout_plus_300() -> None:
    assert min_ttl_for(1800) == 2100
    assert min_ttl_for(None) == 300
    _issue(ttl_s=2100, timeout_s=1800)
    with pytest.raises(InvalidInput, match="2100"):
        _issue(ttl_s=2099, timeout_s=1800)


def test_issue_rejects_bad_scope_and_short_secret() -> None:
    with pytest.raises(InvalidInput):
        _issue(task_id="analytics.daily_sales")
    with pytest.raises(InvalidInput):
        _issue(attempt=0)
    with pytest.raises(InvalidInput, match="32 bytes"):
        issue_task_token(b"short", **SCOPE, now_s=NOW)  # type: ignore[arg-type]


def test_expired_token_rejected() -> None:
    token, expires_at = _issue(ttl_s=600)
    verify_task_token(SECRET, token, expires_at - 1)
    with pytest.raises(Unauthorized, match=r"^invalid_token: .*expired"):
        verify_task_token(SECRET, token, expires_at)


def test_not_yet_valid_token_rejected() -> None:
    token, _ = _issue()
    with pytest.raises(Unauthorized, match=r"^invalid_token: .*not yet valid"):
        verify_task_token(SECRET, token, NOW - 1)


def test_pyjwt_wall_clock_is_not_used() -> None:
    # Issued far in the past relative to the wall clock, verified at an injected "now" inside the window.
    token, _ = _issue(now_s=1_000_000_000)
    assert verify_task_token(SECRET, token, 1_000_000_100).iat == 1_000_000_000


def test_wrong_secret_rejected() -> None:
    token, _ = _issue()
    with pytest.raises(Unauthorized, match=r"^invalid_token: .*signature"):
        verify_task_token(OTHER_SECRET, token, NOW)


@pytest.mark.parametrize(
    "claim, value",
    [
        ("taskId", "ct1_cnVuLTEyMwBvdGhlcg"),
        ("tenantId", "tenant-x"),
        ("workspaceId", "workspace-x"),
        ("runId", "run-999"),
        ("attempt", 2),
        ("attemptId", "att_000000000000000000000000"),
        ("exp", NOW + 999_999),
        ("nbf", NOW - 999),
        ("iat", NOW - 999),
    ],
)
def test_every_tampered_claim_is_401(claim: str, value: object) -> None:
    token, _ = _issue()
    header, _, signature = token.split(".")
    payload = _payload(token)
    payload[claim] = value
    forged = f"{header}.{_b64u(json.dumps(payload).encode())}.{signature}"
    with pytest.raises(Unauthorized) as info:
        verify_task_token(SECRET, forged, NOW)
    assert info.value.http_status == 401
    assert str(info.value).startswith("invalid_token: ")


def test_alg_none_rejected() -> None:
    token, _ = _issue()
    payload = _payload(token)
    header = _b64u(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    unsigned = f"{header}.{_b64u(json.dumps(payload).encode())}."
    with pytest.raises(Unauthorized, match=r"^invalid_token"):
        verify_task_token(SECRET, unsigned, NOW)


def test_other_hmac_alg_rejected() -> None:
    token, _ = _issue()
    hs512 = jwt.encode(_payload(token), SECRET * 2, algorithm="HS512")
    with pytest.raises(Unauthorized, match=r"^invalid_token"):
        verify_task_token(SECRET * 2, hs512, NOW)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x.y.z"])
def test_malformed_token_rejected(garbage: str) -> None:
    with pytest.raises(Unauthorized, match=r"^invalid_token"):
        verify_task_token(SECRET, garbage, NOW)


def test_snake_case_claim_aliases_accepted() -> None:
    token = _hs256(
        {
            "task_id": TASK_ID,
            "tenant_id": "tenant-a",
            "workspace_id": "workspace-b",
            "run_id": "run-123",
            "attempt": 1,
            "attempt_id": "att_d73e81338503cf766c5a9d17",
            "exp": NOW + 60,
            "nbf": NOW,
            "iat": NOW,
        }
    )
    claims = verify_task_token(SECRET, token, NOW)
    check_token_scope(claims, **SCOPE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "missing", ["taskId", "tenantId", "workspaceId", "runId", "attempt", "attemptId", "exp", "nbf", "iat"]
)
def test_missing_claim_rejected(missing: str) -> None:
    token, _ = _issue()
    payload = _payload(token)
    del payload[missing]
    with pytest.raises(Unauthorized, match=rf"^invalid_token: .*{missing}"):
        verify_task_token(SECRET, _hs256(payload), NOW)


@pytest.mark.parametrize(
    "claim, value",
    [
        ("attempt", "1"),
        ("attempt", True),
        ("attempt", 0),
        ("exp", "soon"),
        ("tenantId", 7),
        ("taskId", "not-ct1"),
    ],
)
def test_badly_typed_claim_rejected(claim: str, value: object) -> None:
    token, _ = _issue()
    payload = _payload(token)
    payload[claim] = value
    with pytest.raises(Unauthorized, match=r"^invalid_token"):
        verify_task_token(SECRET, _hs256(payload), NOW)


def test_issuer_and_audience_enforced_when_asked() -> None:
    token, _ = _issue(issuer="servo", audience="servo-callbacks")
    with pytest.raises(Unauthorized, match="iss"):
        verify_task_token(SECRET, token, NOW, issuer="someone-else")
    with pytest.raises(Unauthorized, match="aud"):
        verify_task_token(SECRET, token, NOW, audience="other")
    unscoped, _ = _issue()
    with pytest.raises(Unauthorized, match="iss"):
        verify_task_token(SECRET, unscoped, NOW, issuer="servo")


@pytest.mark.parametrize("field", list(SCOPE))
def test_scope_mismatch_is_401(field: str) -> None:
    token, _ = _issue()
    claims = verify_task_token(SECRET, token, NOW)
    expected = dict(SCOPE)
    expected[field] = 2 if field == "attempt" else "something-else"
    with pytest.raises(Unauthorized) as info:
        check_token_scope(claims, **expected)  # type: ignore[arg-type]
    assert info.value.http_status == 401
    assert info.value.details["field"] == field


def test_claims_are_frozen() -> None:
    token, _ = _issue()
    claims = verify_task_token(SECRET, token, NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.attempt = 5  # type: ignore[misc]


def test_a_token_verified_before_is_still_checked_in_full_on_every_use() -> None:
    """Each callback of an attempt brings its token again: the signature check is kept, not the verdict
    on time, issuer or keys."""
    token, expires_at = _issue(issuer="servo")
    first = verify_task_token(SECRET, token, NOW + 1, issuer="servo")
    assert verify_task_token(SECRET, token, NOW + 2, issuer="servo") == first
    with pytest.raises(Unauthorized, match="expired"):
        verify_task_token(SECRET, token, expires_at, issuer="servo")
    with pytest.raises(Unauthorized, match="iss"):
        verify_task_token(SECRET, token, NOW + 3, issuer="another")
    with pytest.raises(Unauthorized, match="signature"):
        verify_task_token(OTHER_SECRET, token, NOW + 4)  # the key was retired since
    head, _, signature = token.split(".")
    forged = _b64u(json.dumps({**_payload(token), "attempt": 2}).encode())
    with pytest.raises(Unauthorized, match="signature"):
        verify_task_token(SECRET, f"{head}.{forged}.{signature}", NOW + 5)


def test_a_token_this_process_signed_is_not_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller and the callbacks share a process on the embedded stack: what it signed it need
    not verify again (about 0.25 ms of PyJWT a task); every other check is still made."""
    token, expires_at = _issue(issuer="servo")

    def not_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("a token this process signed was decoded again")

    monkeypatch.setattr(jwt, "decode", not_again)
    monkeypatch.setattr(jwt, "get_unverified_header", not_again)
    claims = verify_task_token((OTHER_SECRET, SECRET), token, NOW, issuer="servo")
    assert (claims.task_id, claims.attempt_id, claims.iss) == (TASK_ID, SCOPE["attempt_id"], "servo")
    with pytest.raises(Unauthorized, match="expired"):
        verify_task_token(SECRET, token, expires_at, issuer="servo")
    with pytest.raises(Unauthorized, match="iss"):
        verify_task_token(SECRET, token, NOW, issuer="another")
    monkeypatch.undo()
    with pytest.raises(Unauthorized, match="unknown key id"):
        verify_task_token(OTHER_SECRET, token, NOW)  # its key was retired since: checked in full


def test_a_token_no_longer_kept_is_verified_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    from servo import tokens

    monkeypatch.setattr(tokens, "_SIGNED", tokens._SignedTokens(1))
    first, _ = _issue()
    second, _ = _issue(attempt=2)
    assert tokens._SIGNED.get(first, [SECRET]) is None  # the oldest went first
    assert verify_task_token(SECRET, first, NOW).attempt == 1
    assert verify_task_token(SECRET, second, NOW).attempt == 2
