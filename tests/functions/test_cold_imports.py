"""A function instance's cold start: importing a function that writes no Parquet loads no pyarrow
(issue 21; pyarrow alone is a large share of a cold import), and every function imports cleanly in a
fresh interpreter with only its deployed source on the path."""

from __future__ import annotations

import pytest

from bench.cold_start import cold_import, function_names

# The compactor encodes Parquet on every invocation; every other function reads projections only on
# some requests, and loads pyarrow then.
PARQUET_AT_IMPORT = {"compactor"}


def test_every_function_is_probed() -> None:
    assert {"callback", "compactor", "runs", "trigger"} <= set(function_names())


@pytest.mark.parametrize("name", sorted(set(function_names()) - PARQUET_AT_IMPORT))
def test_a_function_without_parquet_work_imports_no_pyarrow(name: str) -> None:
    loaded = cold_import(name).modules
    assert "pyarrow" not in loaded
