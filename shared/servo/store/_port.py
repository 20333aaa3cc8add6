"""The ObjectStore port: the only way Servo touches object storage.

Concurrency in Servo rests entirely on the two conditional writes here (design §4): ``create``
(create-if-absent, GCS ``if_generation_match=0``) and ``put`` with a generation (compare-and-swap).
Adapters must make both atomic against every other writer, including other processes.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from servo.core.errors import PreconditionFailed

DEFAULT_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """One listed object: its name, current generation and size in bytes."""

    name: str
    generation: int
    size: int


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object's bytes together with the generation they belong to."""

    name: str
    data: bytes
    generation: int


@runtime_checkable
class ObjectStore(Protocol):
    """Generation-versioned object storage with GCS semantics.

    Names are ``/``-separated strings (validated by ``servo.store.validate_name``). Every write returns the
    new generation; generations strictly increase per name, also across delete and re-create.
    """

    def get(self, name: str) -> StoredObject | None:
        """Return the object's bytes and generation, or None when it does not exist."""
        ...

    def create(self, name: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> int:
        """Create the object only if absent and return its generation.

        Raises:
            PreconditionFailed: the object already exists (its bytes are left untouched).
        """
        ...

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> int:
        """Write the object if its generation matches and return the new generation.

        Args:
            name: the object name.
            data: the new bytes.
            if_generation_match: the generation the caller read; 0 means "must not exist", None writes
                unconditionally.
            content_type: the stored content type (meaningful on GCS only).

        Raises:
            PreconditionFailed: the current generation differs from ``if_generation_match``.
        """
        ...

    def list(
        self,
        prefix: str,
        *,
        start_offset: str | None = None,
        end_offset: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[ObjectMeta]:
        """List objects whose name starts with ``prefix``, sorted by name (UTF-8 byte order, as GCS).

        ``start_offset`` is inclusive, ``end_offset`` exclusive; an empty offset means no bound.
        """
        ...

    def delete(self, name: str, *, if_generation_match: int | None = None) -> bool:
        """Delete the object; return False when it did not exist.

        Only for garbage collection: the GCS emulator ignores the precondition, so correctness must never
        depend on it.
        """
        ...


def create_once(
    store: ObjectStore, name: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE
) -> bool:
    """Create-if-absent where a retry is harmless: True when the object now holds exactly ``data``
    (created now, or already there with the same bytes), False when another writer put other bytes.

    A write whose response was lost comes back as PreconditionFailed on retry (GCS does this too), so
    "exists" alone cannot tell a retry from a conflict; comparing the bytes can.
    """
    try:
        store.create(name, data, content_type=content_type)
        return True
    except PreconditionFailed:
        existing = store.get(name)
        return existing is not None and existing.data == data
