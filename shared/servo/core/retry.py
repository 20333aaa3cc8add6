"""The retry policy (design §6, overriding behavior §7's 30 s/900 s backoff).

The deadline is anchored on the ULID time of the failure event, never on a clock read, so a replay
of the ledger computes the same ``retry_not_before`` as the live fold did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servo.core.errors import InvalidInput
from servo.core.ids import ulid_time_ms

RETRY_BASE_MS = 5_000
RETRY_CAP_MS = 300_000
DEFAULT_MAX_RETRIES = 2

# The worker's explicit ``retryable`` wins; otherwise the category decides (contracts §10).
CATEGORY_RETRYABLE: Mapping[str, bool] = {
    "USER_CODE": True,
    "INFRASTRUCTURE": True,
    "TIMEOUT": True,
    "DATA_QUALITY": False,
    "CONFIGURATION": False,
    "CANCELLED": False,
}


def is_retryable(error: Mapping[str, Any] | None) -> bool:
    """Whether a failed attempt may be retried.

    Args:
        error: the worker's error struct (camelCase keys), or None when the failure carried none.

    Returns:
        ``error["retryable"]`` when it is a bool, else the category default; True with no error
        (a silent crash is treated like infrastructure).

    Raises:
        InvalidInput: the error has neither a bool ``retryable`` nor a known ``category``.
    """
    if error is None:
        return True
    explicit = error.get("retryable")
    if isinstance(explicit, bool):
        return explicit
    if explicit is not None:
        raise InvalidInput(f"error.retryable must be a bool, got {explicit!r}")
    category = error.get("category")
    if not isinstance(category, str) or category not in CATEGORY_RETRYABLE:
        raise InvalidInput(f"error.category {category!r} is not one of {sorted(CATEGORY_RETRYABLE)}")
    return CATEGORY_RETRYABLE[category]


def backoff_ms(attempt: int) -> int:
    """5 s x 2^(attempt-1), capped at 300 s, for the failure of ``attempt`` (>= 1)."""
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise InvalidInput(f"attempt must be an int >= 1, got {attempt!r}")
    # The exponent is clamped first so a huge attempt number never builds a huge integer.
    return min(RETRY_BASE_MS << min(attempt - 1, 16), RETRY_CAP_MS)


def retry_not_before_ms(failure_event_id: str, attempt: int) -> int:
    """The earliest time (epoch ms) attempt + 1 may be dispatched after ``attempt`` failed."""
    return ulid_time_ms(failure_event_id) + backoff_ms(attempt)


def max_attempts(max_retries: int) -> int:
    """An asset's ``max_retries`` as the task's ``max_attempts`` (the first try is not a retry)."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidInput(f"max_retries must be an int >= 0, got {max_retries!r}")
    return max_retries + 1
