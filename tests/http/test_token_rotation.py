"""Task-token key rotation: a token names its key (``kid``, a fingerprint of the key, never the key),
and a verifier holding the current and the previous key accepts tokens of either, so tokens minted
just before a rotation keep working until they expire."""

from __future__ import annotations

import hashlib

import jwt
import pytest
from servo.core.errors import Unauthorized
from servo.tokens import issue_task_token, key_id, verify_task_token

from tests.http.test_tokens import NOW, SCOPE

OLD = b"o" * 32
NEW = b"n" * 32
STRANGER = b"s" * 32


def _token(secret: bytes) -> str:
    return issue_task_token(secret, **SCOPE, now_s=NOW)[0]  # type: ignore[arg-type]


def test_a_token_names_its_key_by_fingerprint() -> None:
    header = jwt.get_unverified_header(_token(NEW))
    assert header["kid"] == key_id(NEW) == hashlib.sha256(NEW).hexdigest()[:16]
    assert key_id(OLD) != key_id(NEW)


def test_tokens_of_the_current_and_the_previous_key_are_accepted() -> None:
    keys = (NEW, OLD)
    assert verify_task_token(keys, _token(NEW), NOW).run_id == "run-123"
    assert verify_task_token(keys, _token(OLD), NOW).run_id == "run-123"


def test_a_token_of_a_retired_key_is_refused() -> None:
    with pytest.raises(Unauthorized, match="unknown key id"):
        verify_task_token((NEW,), _token(OLD), NOW)


def test_a_forged_kid_does_not_pick_a_key_that_did_not_sign() -> None:
    forged = jwt.encode({"taskId": "x"}, STRANGER, algorithm="HS256", headers={"kid": key_id(NEW)})
    with pytest.raises(Unauthorized, match="signature verification failed"):
        verify_task_token((NEW, OLD), forged, NOW)


def test_a_token_without_kid_is_tried_against_every_key() -> None:
    # Tokens minted before key ids existed are still in flight during the first rotation.
    claims = {
        "taskId": SCOPE["task_id"],
        "tenantId": "tenant-a",
        "workspaceId": "workspace-b",
        "runId": "run-123",
    }
    legacy = jwt.encode(
        {**claims, "attempt": 1, "attemptId": SCOPE["attempt_id"], "iat": NOW, "nbf": NOW, "exp": NOW + 60},
        OLD,
        algorithm="HS256",
    )
    assert verify_task_token((NEW, OLD), legacy, NOW).tenant_id == "tenant-a"
    with pytest.raises(Unauthorized, match="signature verification failed"):
        verify_task_token((NEW,), legacy, NOW)


def test_no_key_at_all_is_a_configuration_error() -> None:
    with pytest.raises(Exception, match="at least"):
        verify_task_token((), _token(NEW), NOW)
