"""The golden schemas of contracts §9 are a floor for the projection tables."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servo.core.errors import InvalidInput
from servo.projections import schemas
from servo.projections.codec import decode_table, encode_table

from tests.conftest import FIXTURES, load_fixture
from tests.projections.strategies import rows

GOLDEN = sorted(p.stem.removesuffix(".schema") for p in (FIXTURES / "golden_schemas").glob("*.schema.json"))
ARROW_NAMES = {"Utf8": pa.string(), "Int64": pa.int64(), "UInt32": pa.uint32(), "Boolean": pa.bool_()}


def test_every_golden_table_is_defined() -> None:
    assert len(GOLDEN) == 7
    assert set(GOLDEN) == set(schemas.TABLES)


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_schema_is_a_floor(name: str) -> None:
    golden = load_fixture(f"golden_schemas/{name}.schema.json")
    schema = schemas.TABLES[golden["name"]].schema
    positions = []
    for field in golden["fields"]:
        ours = schema.field(field["name"])
        assert ours.type == ARROW_NAMES[field["data_type"]], field["name"]
        assert ours.nullable == field["nullable"], field["name"]
        positions.append(schema.get_field_index(field["name"]))
    assert positions == sorted(positions), "golden columns keep their relative order"
    golden_names = {f["name"] for f in golden["fields"]}
    additions = [f for f in schema if f.name not in golden_names]
    assert all(f.nullable for f in additions), [f.name for f in additions if not f.nullable]


@pytest.mark.parametrize("name", sorted(schemas.TABLES))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_round_trip_is_lossless(name: str, data: st.DataObject) -> None:
    table = schemas.TABLES[name]
    written = data.draw(st.lists(rows(table), max_size=8))
    assert decode_table(table, encode_table(table, written)) == written


def test_equal_rows_encode_to_equal_bytes() -> None:
    table = schemas.TASKS
    row = table.row_type("r", "t", "READY", 0, None, None, None, None, 0, 0, 3, 300, None, 1, "a.b", None)
    assert encode_table(table, [row]) == encode_table(table, [row])


def test_missing_required_column_is_rejected() -> None:
    from servo.projections.codec import write_parquet

    broken = pa.table({"run_id": pa.array(["r"])})
    with pytest.raises(InvalidInput, match="required column"):
        decode_table(schemas.RUNS, write_parquet(broken))


def test_missing_nullable_column_reads_as_none() -> None:
    from servo.projections.codec import rows_to_arrow, write_parquet

    table = schemas.DEP_SATISFACTION
    row = table.row_type("r", "a", "b", True, "SUCCESS", 5, 1, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    older = rows_to_arrow(table, [row]).drop_columns(["resolution"])
    (decoded,) = decode_table(table, write_parquet(older))
    assert decoded.resolution is None and decoded.satisfied_at == 5


def test_garbage_is_a_typed_error() -> None:
    with pytest.raises(InvalidInput, match="not valid Parquet"):
        decode_table(schemas.RUNS, b"not parquet")


def test_reference_code_columns_have_the_contract_types() -> None:
    # contracts §9: the columns the golden files lag behind on, typed as the reference code writes them.
    tasks = schemas.TASKS.schema
    assert tasks.field("retry_not_before").type == pa.int64()
    assert tasks.field("published_at").type == pa.int64()
    assert tasks.field("delta_version").type == pa.int64()
    assert tasks.field("requires_visible_output").type == pa.bool_()
    assert schemas.RUN_KEY_INDEX.schema.field("code_version").nullable


def _column_chunks(data: bytes) -> list[pq.ColumnChunkMetaData]:
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    return [meta.row_group(g).column(c) for g in range(meta.num_row_groups) for c in range(meta.num_columns)]


def test_a_small_file_spends_no_work_on_per_column_compression() -> None:
    # Most projection files a compaction writes hold one run's few changed rows: per column chunk,
    # compression and a dictionary page cost more than they save, and statistics are never read.
    table = schemas.TASKS
    row = table.row_type("r", "t", "READY", 0, None, None, None, None, 0, 0, 3, 300, None, 1, "a.b", None)
    chunks = _column_chunks(encode_table(table, [row]))
    assert {c.compression for c in chunks} == {"UNCOMPRESSED"}
    assert not any(c.has_dictionary_page for c in chunks)
    assert not any(c.is_stats_set for c in chunks)


def test_a_large_file_is_compressed_without_dictionaries() -> None:
    # Measured on a compaction's real files (a five-chain publish's 20-200 KB segments, a fan-out's
    # 1-4 MB bases): a dictionary page made each column chunk 15-35 % dearer to write and to read,
    # and the file no smaller than snappy alone.
    table = schemas.TASKS
    blank = (None, None, None, None, 0, 0, 3, 300, None, 1, "a.b", None)
    written = [table.row_type("r", f"t{i:05d}", "READY", 0, *blank) for i in range(5000)]
    data = encode_table(table, written)
    chunks = _column_chunks(data)
    assert {c.compression for c in chunks} == {"SNAPPY"}
    assert not any(c.has_dictionary_page for c in chunks)
    assert decode_table(table, data) == written
