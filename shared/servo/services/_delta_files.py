"""Immutable delta files of one table: each publish adds a file of the rows it changed, a later file's
row wins over an earlier one's, and the new file first absorbs the newest files no bigger than it (a
binary counter), so a table of n rows keeps about log2(n) files and a row is rewritten about that many
times over its life. The asset catalog's partition files and the sensor projection's finished rows are
kept so; each file is written create-if-absent under its content's name by the caller's ``write``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

K = TypeVar("K")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class DeltaFile:
    path: str
    rows: int
    # The newest ``row_version`` it holds, where rows expire by it ("": not tracked): a file whose
    # newest row is past the retention goes whole.
    newest: str = ""

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path, "rows": self.rows}
        if self.newest:
            body["newest"] = self.newest
        return body

    @classmethod
    def from_body(cls, raw: Mapping[str, Any]) -> DeltaFile:
        return cls(raw["path"], raw["rows"], raw.get("newest", ""))


def add_delta(
    files: tuple[DeltaFile, ...],
    changed: Mapping[K, R],
    rows_of: Callable[[DeltaFile], Mapping[K, R]],
    write: Callable[[list[R]], DeltaFile],
) -> tuple[DeltaFile, ...]:
    """``files`` (oldest first) plus one holding ``changed``, which first absorbs the newest files no
    bigger than it (``rows_of``: a file's rows by key, as they are to be kept)."""
    if not changed:
        return files
    kept = list(files)
    rows = dict(changed)
    while kept and kept[-1].rows <= len(rows):
        rows = {**rows_of(kept.pop()), **rows}
    return (*kept, write(list(rows.values())))
