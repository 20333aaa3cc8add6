"""Errors that asset code raises to tell Servo how a failure should be treated.

    Exception
    └── AssetError                  category USER_CODE, retryable unless told otherwise
        ├── DataQualityError        category DATA_QUALITY, not retryable by default
        ├── ConfigurationError      category CONFIGURATION, not retryable by default
        │   └── UpstreamNotMaterialized   (also a KeyError) raised by Servo: an upstream has no output
        └── RetryableError          category USER_CODE, retryable by default

These are not part of the control plane's tree (``servo.core.errors``): they are raised by user code and
only ever read by the worker, which turns them into the ``error{category, retryable, message}`` of a
completion through :func:`classify_exception`.
"""

from __future__ import annotations

from servo.core.retry import CATEGORY_RETRYABLE

__all__ = [
    "AssetError",
    "ConfigurationError",
    "DataQualityError",
    "RetryableError",
    "UpstreamNotMaterialized",
    "classify_exception",
]

USER_CODE = "USER_CODE"


class AssetError(Exception):
    """Base of the errors asset code may raise on purpose.

    Args:
        message: what went wrong, shown by ``servo status RUN_ID`` and in the logs.
        retryable: overrides the category's default when given.
    """

    category: str = USER_CODE

    def __init__(self, message: str, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None and not isinstance(retryable, bool):
            raise TypeError(f"retryable must be a bool or None, not {type(retryable).__name__}")
        self.retryable: bool = CATEGORY_RETRYABLE[self.category] if retryable is None else retryable

    def __str__(self) -> str:
        return self.message


class DataQualityError(AssetError):
    """The data is wrong (a check failed); retrying the same input will not help."""

    category = "DATA_QUALITY"


class ConfigurationError(AssetError):
    """The asset is misconfigured (missing setting, bad credentials); fix the config, not the run."""

    category = "CONFIGURATION"


class UpstreamNotMaterialized(ConfigurationError, KeyError):
    """Raised when an asset reads the output of an upstream that has none: the run did not
    materialize it and no recent run did either. A KeyError too, so ``a.get("metadata")`` and
    ``"metadata" in a`` behave as on an empty mapping."""

    def __init__(self, upstream_key: str, field: object) -> None:
        super().__init__(
            f"upstream {upstream_key} has no successful materialization to read {field!r} from: "
            f"run it first (`servo run {upstream_key}`), or run both (`--include-upstream`)"
        )
        self.upstream_key = upstream_key


class RetryableError(AssetError):
    """A transient failure in user code (a flaky API, a lock held elsewhere): try again."""

    def __init__(self, message: str, retryable: bool | None = None) -> None:
        super().__init__(message, True if retryable is None else retryable)


def classify_exception(exc: BaseException) -> tuple[str, bool, str]:
    """How a failed attempt is reported: ``(category, retryable, message)``.

    An :class:`AssetError` reports its own category and retryability; anything else is a USER_CODE
    failure and retryable, since most unexpected exceptions (network, races) are transient.
    """
    if isinstance(exc, AssetError):
        return exc.category, exc.retryable, exc.message or type(exc).__name__
    text = str(exc)
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return USER_CODE, True, message
