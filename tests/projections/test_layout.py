"""Pointer, manifest and run index: the published layout round-trips and rejects garbage."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core.errors import InvalidInput
from servo.projections import layout, schemas

from tests.projections.strategies import rows


def test_pointer_round_trip_and_hash() -> None:
    p = layout.Pointer(7, layout.manifest_path(7), 1, "sha256:" + "0" * 64, 1_700_000_000_000)
    raw = p.encode()
    assert layout.Pointer.decode(raw) == p
    assert b'"manifest_id":"00000000000000000007"' in raw
    assert layout.pointer_hash(raw).startswith("sha256:")


@settings(max_examples=20, deadline=None)
@given(rows(schemas.RUNS))
def test_manifest_round_trip(run: object) -> None:
    ref = layout.FileRef("state/orchestration/index/d019000.abcdefabcdef.parquet", "sha256:00", 10)
    m = layout.Manifest(
        3,
        1,
        layout.manifest_path(2),
        99,
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ("01ARZ3NDEKTSV4RRFFQ69G5FAV",),
        {"d019000": layout.BucketRef((layout.BucketFile(ref, 2), layout.BucketFile(ref, 1)), 55)},
        live={
            "01ARZ3NDEKTSV4RRFFQ69G5FAW": layout.IndexEntry(
                "01ARZ3NDEKTSV4RRFFQ69G5FAW", run, ("state/orchestration/runs/x/base.0.parquet",), "RUNNING"
            ),
            "01ARZ3NDEKTSV4RRFFQ69G5FAX": layout.IndexEntry("01ARZ3NDEKTSV4RRFFQ69G5FAX", None, (), None),
        },
    )
    assert layout.Manifest.decode(m.encode()) == m
    assert m.active_run_ids == ("01ARZ3NDEKTSV4RRFFQ69G5FAW", "01ARZ3NDEKTSV4RRFFQ69G5FAX")
    assert layout.manifest_path(3) == "state/orchestration/manifests/00000000000000000003.json"


def test_a_head_holds_its_manifest_and_decodes_as_both() -> None:
    ulid = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    m = layout.Manifest(4, 1, None, 99, ulid, (ulid,), revision_ulid="01ARZ3NDEKTSV4RRFFQ69G5FAW")
    p = layout.Pointer(4, layout.POINTER_PATH, 1, "sha256:" + "0" * 64, 99)
    raw = layout.encode_head(p, m)
    assert layout.decode_head(raw) == (p, m)
    # A reader that decodes it as a pointer, or follows manifest_path to a manifest, gets the same.
    assert layout.Pointer.decode(raw) == p and layout.Manifest.decode(raw) == m
    # A head of before: the pointer names a manifest object of its own.
    old = layout.Pointer(4, layout.manifest_path(4), 1, None, 99)
    assert layout.decode_head(old.encode()) == (old, None)


@pytest.mark.parametrize(
    "pointer",
    [
        layout.Pointer(4, layout.manifest_path(4), 1, None, 99),  # names another object
        layout.Pointer(5, layout.POINTER_PATH, 1, None, 99),  # another manifest's id
    ],
)
def test_a_head_names_itself_and_its_manifest(pointer: layout.Pointer) -> None:
    with pytest.raises(ValueError):
        layout.encode_head(pointer, layout.Manifest(4, 1, None, 99, "", ()))


@pytest.mark.parametrize("raw", [b"{", b"[]", b'{"manifest_id": "1"}'])
def test_malformed_manifest_and_pointer_are_typed_errors(raw: bytes) -> None:
    with pytest.raises(InvalidInput):
        layout.Manifest.decode(raw)
    with pytest.raises(InvalidInput):
        layout.Pointer.decode(raw)


def test_bucket_is_the_run_ulid_day() -> None:
    # 01ARZ3NDEK… is 2016-07-30 (1469922850259 ms): day 17012.
    assert layout.bucket_of("01ARZ3NDEKTSV4RRFFQ69G5FAW") == "d017012"
    assert layout.bucket_of("run_abc").startswith("h")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.none() | rows(schemas.RUNS), st.lists(st.text(max_size=5), max_size=3)), max_size=5)
)
def test_index_round_trip(data: list) -> None:
    entries = [
        layout.IndexEntry(
            f"r{i:03d}",
            None if run is None else run.__class__(**{**_asdict(run), "run_id": f"r{i:03d}"}),
            tuple(segs),
            None if run is None else "RUNNING",
        )
        for i, (run, segs) in enumerate(data)
    ]
    assert layout.decode_index(layout.encode_index(entries)) == entries


def test_an_index_with_runs_not_yet_triggered_keeps_its_bytes_without_pyarrow_compute() -> None:
    # A null struct's validity used to come from pa.StructArray.from_arrays(mask=...), and be read
    # back with is_valid()/filter(), all of which import pyarrow.compute: tens of milliseconds of a
    # compactor's first index write or read (and of a cold function instance). The file must stay
    # byte for byte what the mask build wrote.
    code = """
import sys
import pyarrow as pa
from servo.projections import layout, schemas
from servo.core.rows import RunRow
run = RunRow(**{f.name: (0 if pa.types.is_integer(f.type) else False if pa.types.is_boolean(f.type)
    else None if f.nullable else "x") for f in schemas.RUNS.schema})
from servo.projections.codec import write_parquet
both = [layout.IndexEntry("r1", None, ("s1",), None), layout.IndexEntry("r2", run, (), "RUNNING")]
cases = [(entries, layout.encode_index(entries)) for entries in (both, both[:1], both[1:], [])]
for entries, data in cases:
    assert layout.decode_index(data) == entries
assert "pyarrow.compute" not in sys.modules, "the index codec imported pyarrow.compute"
for entries, data in cases:
    arrays = [
        pa.array([None if e.run is None else getattr(e.run, f.name) for e in entries], f.type)
        if f.nullable
        else pa.array([layout._PLACEHOLDER.get(f.type, 0) if e.run is None else getattr(e.run, f.name)
            for e in entries], f.type)
        for f in schemas.RUNS.schema
    ]
    mask = pa.array([e.run is None for e in entries], pa.bool_())
    runs = pa.StructArray.from_arrays(arrays, fields=list(schemas.RUNS.schema), mask=mask)
    table = pa.Table.from_arrays(
        [pa.array([e.run_id for e in entries], pa.string()),
         pa.array([list(e.segments) for e in entries], layout.INDEX_SCHEMA.field("segments").type),
         runs, pa.array([e.public_state for e in entries], pa.string())],
        schema=layout.INDEX_SCHEMA,
    )
    assert data == write_parquet(table), f"index bytes changed: {entries}"
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def _asdict(row: object) -> dict:
    import dataclasses

    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}  # type: ignore[arg-type]
