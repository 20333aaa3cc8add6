"""Hypothesis strategies for projection rows, derived from the row dataclasses' fields."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from hypothesis import strategies as st
from servo.projections.schemas import Table

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
KEY = st.text(alphabet="abcdefghij_.", min_size=1, max_size=6)


def _field_strategy(table: Table, name: str, annotation: Any) -> st.SearchStrategy[Any]:
    optional = type(None) in typing.get_args(annotation)
    inner = next((a for a in typing.get_args(annotation) if a is not type(None)), annotation)
    arrow_type = table.schema.field(name).type
    if inner is str:
        base: st.SearchStrategy[Any] = TEXT
    elif inner is bool:
        base = st.booleans()
    elif str(arrow_type) == "uint32":
        base = st.integers(0, 2**32 - 1)
    else:
        base = st.integers(-(2**63), 2**63 - 1)
    return st.one_of(st.none(), base) if optional else base


def rows(table: Table, **fixed: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(table.row_type)
    kwargs = {
        f.name: fixed[f.name] if f.name in fixed else _field_strategy(table, f.name, hints[f.name])
        for f in dataclasses.fields(table.row_type)
    }
    return st.builds(table.row_type, **kwargs)
