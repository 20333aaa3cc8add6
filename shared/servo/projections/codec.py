"""Lossless rows <-> Arrow <-> Parquet bytes for the projection tables.

Columns are built one at a time from attributes (not via ``asdict``) because a run partition can hold
tens of thousands of rows and this is on the compaction path. Decoding tolerates files written by a
newer codec: unknown columns are ignored and missing *nullable* columns read as None; a missing
non-null column is a corrupt or foreign file and raises.
"""

from __future__ import annotations

import hashlib
import io
import operator
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from servo.core.errors import InvalidInput
from servo.core.rows import row_maker
from servo.projections.schemas import Table


def _arrays(table: Table, rows: Sequence[Any]) -> list[pa.Array]:
    # One C-level attrgetter call per row and one transpose, instead of a Python-level getattr per
    # cell: a fan-out's base segment has tens of thousands of cells.
    fields = list(table.schema)
    if not rows:
        return [pa.array([], type=f.type) for f in fields]
    get = operator.attrgetter(*(f.name for f in fields))
    columns = zip(*map(get, rows), strict=True) if len(fields) > 1 else ([get(r) for r in rows],)
    return [pa.array(list(values), type=f.type) for f, values in zip(fields, columns, strict=True)]


def rows_to_struct(table: Table, rows: Sequence[Any]) -> pa.StructArray:
    """The rows as one StructArray whose fields are the table's columns."""
    return pa.StructArray.from_arrays(_arrays(table, rows), fields=list(table.schema))


def rows_to_arrow(table: Table, rows: Sequence[Any]) -> pa.Table:
    """The rows as an Arrow table with exactly ``table.schema``."""
    return pa.Table.from_arrays(_arrays(table, rows), schema=table.schema)


def _columns_to_rows(table: Table, columns: dict[str, list[Any]], length: int) -> list[Any]:
    values = []
    for f in table.schema:
        column = columns.get(f.name)
        if column is None:
            if not f.nullable:
                raise InvalidInput(
                    f"projection {table.name}: required column {f.name!r} is missing",
                    details={"table": table.name, "column": f.name},
                )
            column = [None] * length
        values.append(column)
    make: Callable[..., Any] = row_maker(table.row_type)
    return [make(*fields) for fields in zip(*values, strict=True)] if values else []


def arrow_to_rows(table: Table, data: pa.Table | pa.StructArray) -> list[Any]:
    """Rows of ``table`` from Arrow columns (a table or a struct array of its columns)."""
    if isinstance(data, pa.StructArray):
        names = [data.type.field(i).name for i in range(data.type.num_fields)]
        columns = {name: data.field(i).to_pylist() for i, name in enumerate(names)}
    else:
        columns = {name: data.column(name).to_pylist() for name in data.column_names}
    return _columns_to_rows(table, columns, len(data))


# Below this much Arrow data a file is mostly per-column metadata. Compressing each tiny column chunk
# then costs more than it saves: zstd sets up a context per chunk, and a one-run delta has about 65
# leaf columns, so it took ~4.5 ms to write against ~1.2 ms plain, and came out larger. Most files a
# compaction writes are such deltas; the larger ones (a busy publish's segments, a fan-out's base, an
# index bucket) get snappy, which decodes several times faster than zstd. No file gets dictionaries:
# on a compaction's real files (20-200 KB segments of five chains in flight, 1-4 MB fan-out bases) a
# dictionary page made every column chunk 15-35 % dearer to write and to read, for no smaller a file.
SMALL_TABLE_BYTES = 16 * 1024
# Reading a small file on Arrow's thread pool costs more in hand-offs than it gains.
THREADED_READ_BYTES = 1024 * 1024


def write_parquet(data: pa.Table) -> bytes:
    """Parquet bytes of an Arrow table; deterministic, so equal tables give equal bytes (and names)."""
    sink = io.BytesIO()
    small = data.nbytes < SMALL_TABLE_BYTES
    # The Parquet schema already carries every type and nullability we use; the Arrow copy would add
    # kilobytes to each of the many small files a compaction writes. Readers take whole files, so
    # column statistics would only be footer bytes.
    pq.write_table(
        data,
        sink,
        compression="none" if small else "snappy",
        use_dictionary=False,
        write_statistics=False,
        store_schema=False,
    )
    return sink.getvalue()


def read_parquet(data: bytes, what: str) -> pa.Table:
    """Parse Parquet bytes, turning a corrupt file into a typed error naming it."""
    try:
        # ParquetFile reads one in-memory file directly; read_table would first import and set up the
        # dataset machinery (tens of milliseconds on a cold function instance).
        return pq.ParquetFile(io.BytesIO(data)).read(use_threads=len(data) >= THREADED_READ_BYTES)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"projection file {what} is not valid Parquet: {exc}") from exc


def encode_table(table: Table, rows: Sequence[Any]) -> bytes:
    """Parquet bytes of ``rows`` under ``table.schema``."""
    return write_parquet(rows_to_arrow(table, rows))


def decode_table(table: Table, data: bytes) -> list[Any]:
    """Rows of ``table`` from Parquet bytes written by :func:`encode_table`.

    Raises:
        InvalidInput: the bytes are not Parquet, or a required column is missing.
    """
    return arrow_to_rows(table, read_parquet(data, table.name))


def content_hex12(data: bytes) -> str:
    """The first 12 hex digits of sha256(data): the name part that makes projection files immutable."""
    return hashlib.sha256(data).hexdigest()[:12]


def checksum(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
