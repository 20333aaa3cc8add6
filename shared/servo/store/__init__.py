"""The ObjectStore port and its adapters.

``GcsStore``/``gcs_store_from_env`` are imported lazily: google-cloud-storage costs ~0.25 s to import, which
the embedded mode and the CLI should not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from servo.store._names import MAX_NAME_BYTES, validate_name, validate_prefix
from servo.store._port import DEFAULT_CONTENT_TYPE, ObjectMeta, ObjectStore, StoredObject, create_once
from servo.store.counting import CountingStore, OpCounts
from servo.store.local import LocalFileStore
from servo.store.scoped import ScopedStore

if TYPE_CHECKING:
    from servo.store.gcs import GcsStore, gcs_store_from_env

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "MAX_NAME_BYTES",
    "CountingStore",
    "GcsStore",
    "LocalFileStore",
    "ObjectMeta",
    "ObjectStore",
    "OpCounts",
    "ScopedStore",
    "StoredObject",
    "create_once",
    "gcs_store_from_env",
    "validate_name",
    "validate_prefix",
]


def __getattr__(name: str) -> Any:
    if name in ("GcsStore", "gcs_store_from_env"):
        from servo.store import gcs

        return getattr(gcs, name)
    raise AttributeError(f"module 'servo.store' has no attribute {name!r}")
