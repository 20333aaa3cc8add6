from __future__ import annotations

import pytest
from servo.core.errors import InvalidPartitionKey
from servo.errors import (
    AssetError,
    ConfigurationError,
    DataQualityError,
    RetryableError,
    classify_exception,
)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (AssetError("plain"), ("USER_CODE", True, "plain")),
        (DataQualityError("3 null ids"), ("DATA_QUALITY", False, "3 null ids")),
        (DataQualityError("flaky source", retryable=True), ("DATA_QUALITY", True, "flaky source")),
        (ConfigurationError("no API key"), ("CONFIGURATION", False, "no API key")),
        (RetryableError("rate limited"), ("USER_CODE", True, "rate limited")),
        (RetryableError("give up", retryable=False), ("USER_CODE", False, "give up")),
        (ValueError("bad row"), ("USER_CODE", True, "ValueError: bad row")),
        (KeyError("id"), ("USER_CODE", True, "KeyError: 'id'")),
        (RuntimeError(), ("USER_CODE", True, "RuntimeError")),
        (InvalidPartitionKey("x"), ("USER_CODE", True, "InvalidPartitionKey: x")),
    ],
)
def test_classify_exception(exc: BaseException, expected: tuple[str, bool, str]) -> None:
    assert classify_exception(exc) == expected


def test_asset_errors_are_plain_exceptions_users_can_raise_and_catch() -> None:
    with pytest.raises(AssetError) as info:
        raise DataQualityError("bad")
    assert info.value.category == "DATA_QUALITY" and info.value.retryable is False
    assert str(info.value) == "bad"
    with pytest.raises(TypeError):
        AssetError("x", retryable="yes")  # type: ignore[arg-type]
