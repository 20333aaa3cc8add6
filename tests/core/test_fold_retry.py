"""The retry policy of design §6 (5 s doubling, cap 300 s, anchored on the failure event's ULID)."""

from __future__ import annotations

from typing import Any

import pytest
from servo.core.errors import InvalidInput
from servo.core.ids import UlidFactory, ulid_time_ms
from servo.core.retry import backoff_ms, is_retryable, max_attempts, retry_not_before_ms


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, True),
        ({"category": "USER_CODE"}, True),
        ({"category": "INFRASTRUCTURE"}, True),
        ({"category": "TIMEOUT"}, True),
        ({"category": "DATA_QUALITY"}, False),
        ({"category": "CONFIGURATION"}, False),
        ({"category": "CANCELLED"}, False),
        ({"category": "USER_CODE", "retryable": False}, False),  # the worker's word wins
        ({"category": "DATA_QUALITY", "retryable": True}, True),
        ({"retryable": True}, True),
    ],
)
def test_is_retryable(error: dict[str, Any] | None, expected: bool) -> None:
    assert is_retryable(error) is expected


@pytest.mark.parametrize(
    "error", [{}, {"category": "GREMLINS"}, {"category": "USER_CODE", "retryable": "yes"}]
)
def test_is_retryable_rejects_what_it_cannot_decide(error: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        is_retryable(error)


def test_backoff_doubles_from_5s_and_caps_at_300s() -> None:
    assert [backoff_ms(a) for a in range(1, 10)] == [
        5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000,
    ]  # fmt: skip
    assert backoff_ms(10**9) == 300_000
    for bad in (0, -1, True):
        with pytest.raises(InvalidInput):
            backoff_ms(bad)


def test_deadline_is_anchored_on_the_failure_event_id() -> None:
    event_id = UlidFactory(lambda n: bytes(n)).new(1_700_000_123_456)
    assert ulid_time_ms(event_id) == 1_700_000_123_456
    assert retry_not_before_ms(event_id, 1) == 1_700_000_128_456
    assert retry_not_before_ms(event_id, 3) == 1_700_000_143_456
    with pytest.raises(InvalidInput):
        retry_not_before_ms("not-a-ulid", 1)


def test_max_retries_to_max_attempts() -> None:
    assert [max_attempts(r) for r in (0, 2, 5)] == [1, 3, 6]
    with pytest.raises(InvalidInput):
        max_attempts(-1)
