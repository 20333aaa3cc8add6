from __future__ import annotations

from pathlib import Path

import pytest
from servo.core.errors import InvalidId, PreconditionFailed
from servo.store import LocalFileStore, ObjectMeta, ScopedStore, StoredObject


@pytest.fixture
def inner(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path)


def test_names_are_prefixed_with_tenant_and_workspace(inner: LocalFileStore) -> None:
    scoped = ScopedStore(inner, "acme", "prod")
    assert scoped.scope == "acme/prod/"
    gen = scoped.create("ledger/orchestration/e1.json", b"{}")
    assert inner.get("acme/prod/ledger/orchestration/e1.json") == StoredObject(
        "acme/prod/ledger/orchestration/e1.json", b"{}", gen
    )
    assert scoped.get("ledger/orchestration/e1.json") == StoredObject(
        "ledger/orchestration/e1.json", b"{}", gen
    )


def test_put_and_delete_go_to_the_scoped_name(inner: LocalFileStore) -> None:
    scoped = ScopedStore(inner, "acme", "prod")
    g1 = scoped.create("head.json", b"1")
    with pytest.raises(PreconditionFailed):
        scoped.put("head.json", b"2", if_generation_match=g1 + 1000)
    g2 = scoped.put("head.json", b"2", if_generation_match=g1)
    assert inner.get("acme/prod/head.json") == StoredObject("acme/prod/head.json", b"2", g2)
    assert scoped.delete("head.json") is True
    assert inner.get("acme/prod/head.json") is None


def test_workspaces_do_not_see_each_other(inner: LocalFileStore) -> None:
    a, b = ScopedStore(inner, "acme", "prod"), ScopedStore(inner, "acme", "prod2")
    a.create("x/1", b"a")
    b.create("x/1", b"b")
    b.create("x/2", b"b")
    assert [m.name for m in a.list("")] == ["x/1"]
    assert [m.name for m in b.list("x/")] == ["x/1", "x/2"]
    got = a.get("x/1")
    assert got is not None and got.data == b"a"


def test_list_strips_the_scope_and_scopes_the_offsets(inner: LocalFileStore) -> None:
    scoped = ScopedStore(inner, "t1", "w_1")
    for n in ["l/a", "l/b", "l/c", "l/d"]:
        scoped.create(n, b"xy")
    inner.create("t1/w_0/l/zz", b"other workspace")
    listed = scoped.list("l/", start_offset="l/b", end_offset="l/d", limit=5)
    assert [m.name for m in listed] == ["l/b", "l/c"]
    assert all(isinstance(m, ObjectMeta) and m.size == 2 for m in listed)
    assert [m.name for m in scoped.list("", start_offset="", end_offset="")] == ["l/a", "l/b", "l/c", "l/d"]


@pytest.mark.parametrize(
    ("tenant", "workspace"), [("", "w"), ("T", "w"), ("t", "w/x"), ("t", ".."), ("t/..", "w"), ("t", "w%")]
)
def test_bad_tenant_or_workspace_is_refused(inner: LocalFileStore, tenant: str, workspace: str) -> None:
    with pytest.raises(InvalidId):
        ScopedStore(inner, tenant, workspace)


@pytest.mark.parametrize("bad", ["../other/x", "/abs", "", "a//b"])
def test_names_cannot_escape_the_scope(inner: LocalFileStore, bad: str) -> None:
    scoped = ScopedStore(inner, "t", "w")
    with pytest.raises(InvalidId) as info:
        scoped.create(bad, b"x")
    assert "t/w/" not in str(info.value)  # the error reports the caller's name, not the prefixed one
    with pytest.raises(InvalidId):
        scoped.list("../")
