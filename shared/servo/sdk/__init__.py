"""The authoring SDK: ``@asset``, partitions, the asset context, discovery and the deploy manifest.

Control-plane code (``servo.core``, ``servo.services``, the Cloud Functions) never imports this package.
"""

from servo.sdk._asset import (
    ASSET_ATTR,
    AssetDefinition,
    AssetDep,
    AssetIn,
    CodeLocation,
    Resources,
    asset,
    definition_of,
)
from servo.sdk._context import AssetContext, InMemoryReporter, Reporter
from servo.sdk._discovery import (
    CODE_VERSION_PREFIX,
    DiscoveryProblem,
    DiscoveryResult,
    code_version,
    discover_assets,
)
from servo.sdk._errors import AssetDefinitionError, DiscoveryError, ManifestValidationError
from servo.sdk._manifest import (
    GitInfo,
    assign_asset_ids,
    build_manifest,
    git_info,
    load_asset_ids,
    manifest_bytes,
    manifest_dependency_graph,
    new_uuid7,
    save_asset_ids,
)
from servo.sdk._partitions import (
    AssetPartition,
    DailyPartitions,
    HourlyPartitions,
    PartitionDimension,
    StaticPartitions,
    TimePartitions,
    dimension_from_manifest,
    partition_key_from_cli,
)
from servo.sdk._schedules import ScheduleDefinition, ScheduleDefinitionError, schedule
from servo.sdk._sensors import (
    RunRequest,
    SensorContext,
    SensorDefinition,
    SensorDefinitionError,
    SkipReason,
    run_status_sensor,
    sensor,
)
from servo.sdk._validate import validate_assets

__all__ = [
    "ASSET_ATTR",
    "CODE_VERSION_PREFIX",
    "AssetContext",
    "AssetDefinition",
    "AssetDefinitionError",
    "AssetDep",
    "AssetIn",
    "AssetPartition",
    "CodeLocation",
    "DailyPartitions",
    "DiscoveryError",
    "DiscoveryProblem",
    "DiscoveryResult",
    "GitInfo",
    "HourlyPartitions",
    "InMemoryReporter",
    "ManifestValidationError",
    "PartitionDimension",
    "Reporter",
    "Resources",
    "RunRequest",
    "ScheduleDefinition",
    "ScheduleDefinitionError",
    "SensorContext",
    "SensorDefinition",
    "SensorDefinitionError",
    "SkipReason",
    "StaticPartitions",
    "TimePartitions",
    "asset",
    "assign_asset_ids",
    "build_manifest",
    "code_version",
    "definition_of",
    "dimension_from_manifest",
    "discover_assets",
    "git_info",
    "load_asset_ids",
    "manifest_bytes",
    "manifest_dependency_graph",
    "new_uuid7",
    "partition_key_from_cli",
    "run_status_sensor",
    "save_asset_ids",
    "schedule",
    "sensor",
    "validate_assets",
]
