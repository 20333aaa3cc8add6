"""ScopedStore: one tenant/workspace's view of the bucket (design §4: every path under ``{t}/{w}/``)."""

from __future__ import annotations

import builtins

from servo.core.ids import validate_scope_id, validate_tenant_id
from servo.store._names import normalize_offset, validate_name, validate_prefix
from servo.store._port import DEFAULT_CONTENT_TYPE, ObjectMeta, ObjectStore, StoredObject


class ScopedStore:
    """An ObjectStore that prefixes every name with ``{tenant}/{workspace}/`` and strips it from listings.

    Args:
        inner: the store holding every tenant.
        tenant: ``[a-z0-9_-]+``.
        workspace: ``[a-z0-9_-]+``.
    """

    def __init__(self, inner: ObjectStore, tenant: str, workspace: str) -> None:
        self._inner = inner
        self._tenant = validate_tenant_id(tenant)
        self._workspace = validate_scope_id(workspace, "workspace")
        self._root = f"{tenant}/{workspace}/"

    @property
    def scope(self) -> str:
        """The prefix this store adds, ``{tenant}/{workspace}/``."""
        return self._root

    def _full(self, name: str) -> str:
        # Validated before prefixing, so the error names what the caller passed.
        return self._root + validate_name(name)

    def get(self, name: str) -> StoredObject | None:
        got = self._inner.get(self._full(name))
        return None if got is None else StoredObject(name, got.data, got.generation)

    def create(self, name: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> int:
        return self._inner.create(self._full(name), data, content_type=content_type)

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> int:
        return self._inner.put(
            self._full(name), data, if_generation_match=if_generation_match, content_type=content_type
        )

    def list(
        self,
        prefix: str,
        *,
        start_offset: str | None = None,
        end_offset: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[ObjectMeta]:
        start = normalize_offset(start_offset, "start_offset")
        end = normalize_offset(end_offset, "end_offset")
        listed = self._inner.list(
            self._root + validate_prefix(prefix),
            start_offset=None if start is None else self._root + start,
            end_offset=None if end is None else self._root + end,
            limit=limit,
        )
        cut = len(self._root)
        return [ObjectMeta(m.name[cut:], m.generation, m.size) for m in listed]

    def delete(self, name: str, *, if_generation_match: int | None = None) -> bool:
        return self._inner.delete(self._full(name), if_generation_match=if_generation_match)
