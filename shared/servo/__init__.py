"""Servo: an asset-first data orchestrator on Google Cloud serverless pieces."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# `from servo import asset` is the authoring entry point, but the Cloud Functions import `servo.core`
# and must never load the SDK: these names are imported on first access only.
_SDK_EXPORTS = frozenset(
    {
        "asset",
        "AssetIn",
        "AssetContext",
        "Resources",
        "DailyPartitions",
        "HourlyPartitions",
        "TimePartitions",
        "StaticPartitions",
        "schedule",
        "ScheduleDefinition",
        "sensor",
        "run_status_sensor",
        "RunRequest",
        "SkipReason",
        "SensorContext",
    }
)

if TYPE_CHECKING:
    from servo.sdk import (
        AssetContext,
        AssetIn,
        DailyPartitions,
        HourlyPartitions,
        Resources,
        RunRequest,
        ScheduleDefinition,
        SensorContext,
        SkipReason,
        StaticPartitions,
        TimePartitions,
        asset,
        run_status_sensor,
        schedule,
        sensor,
    )


def __getattr__(name: str) -> Any:
    if name in _SDK_EXPORTS:
        from servo import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'servo' has no attribute {name!r}")


__all__ = [
    "AssetContext",
    "AssetIn",
    "DailyPartitions",
    "HourlyPartitions",
    "Resources",
    "RunRequest",
    "ScheduleDefinition",
    "SensorContext",
    "SkipReason",
    "StaticPartitions",
    "TimePartitions",
    "asset",
    "run_status_sensor",
    "schedule",
    "sensor",
]
