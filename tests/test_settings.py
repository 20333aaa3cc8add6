"""Settings fail closed: outside the local stacks, the built-in development secrets are never used."""

from __future__ import annotations

import pytest
from servo.core.errors import InvalidInput
from servo.settings import Settings

REAL = {"SERVO_TOKEN_SECRET": "t" * 48, "SERVO_DISPATCH_SECRET": "d" * 48}
BUILT_IN = Settings()


@pytest.mark.parametrize(
    "secrets",
    [
        {},
        {"SERVO_TOKEN_SECRET": REAL["SERVO_TOKEN_SECRET"]},
        {"SERVO_DISPATCH_SECRET": REAL["SERVO_DISPATCH_SECRET"]},
        {"SERVO_TOKEN_SECRET": "", "SERVO_DISPATCH_SECRET": ""},
        {
            "SERVO_TOKEN_SECRET": BUILT_IN.token_secret.decode(),
            "SERVO_DISPATCH_SECRET": BUILT_IN.dispatch_secret,
        },
    ],
    ids=["none", "no-dispatch-secret", "no-token-secret", "empty", "the-built-in-values"],
)
def test_gcs_without_real_secrets_refuses_to_start(secrets: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="SERVO_TOKEN_SECRET and SERVO_DISPATCH_SECRET") as refused:
        Settings.from_env({"SERVO_STORAGE": "gcs", **secrets})
    assert "t" * 48 not in refused.value.message and "d" * 48 not in refused.value.message


def test_gcs_with_real_secrets_uses_them() -> None:
    settings = Settings.from_env({"SERVO_STORAGE": "gcs", **REAL})
    assert settings.token_secret == REAL["SERVO_TOKEN_SECRET"].encode()
    assert settings.dispatch_secret == REAL["SERVO_DISPATCH_SECRET"]


@pytest.mark.parametrize(
    "env",
    [{}, {"SERVO_STORAGE": "local"}, {"SERVO_STORAGE": "gcs", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:1"}],
)
def test_the_local_stacks_may_use_the_built_in_secrets(env: dict[str, str]) -> None:
    assert Settings.from_env(env).dispatch_secret == BUILT_IN.dispatch_secret
