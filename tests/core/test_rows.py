from __future__ import annotations

import dataclasses

import pytest
from servo.core import rows
from servo.core.rows import replace_row

ROW_TYPES = [
    cls
    for cls in vars(rows).values()
    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == rows.__name__
]


def _sample(cls: type) -> object:
    values = {}
    for i, f in enumerate(dataclasses.fields(cls)):
        values[f.name] = f"v{i}"  # rows hold no checks: any value shows where it went
    return cls(**values)


@pytest.mark.parametrize("cls", ROW_TYPES, ids=lambda c: c.__name__)
def test_replace_row_equals_dataclasses_replace(cls: type) -> None:
    row = _sample(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    changes = {names[0]: "first", names[-1]: "last"}
    assert replace_row(row, **changes) == dataclasses.replace(row, **changes)  # type: ignore[type-var]
    assert replace_row(row) == row


def test_replace_row_refuses_an_unknown_field() -> None:
    row = _sample(rows.TaskRow)
    with pytest.raises(TypeError, match="no field 'nope'"):
        replace_row(row, nope=1)


@pytest.mark.parametrize("cls", ROW_TYPES, ids=lambda c: c.__name__)
def test_a_row_made_fast_is_the_row_its_class_makes_and_as_frozen(cls: type) -> None:
    reference = _sample(cls)
    values = [getattr(reference, f.name) for f in dataclasses.fields(cls)]
    made = rows.row_maker(cls)(*values)
    assert type(made) is cls and made == reference and hash(made) == hash(reference)
    assert repr(made) == repr(reference)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.row_version = "changed"  # type: ignore[misc]
    assert type(replace_row(reference, row_version="x")) is cls
    required = {
        f.name: f"v{i}" for i, f in enumerate(dataclasses.fields(cls)) if f.default is dataclasses.MISSING
    }
    assert rows.row_maker(cls)(**required) == cls(**required)  # by name, the defaults filled in


def test_a_class_that_is_no_frozen_slotted_row_is_made_by_its_own_constructor() -> None:
    @dataclasses.dataclass(frozen=True)
    class WithDict:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("negative")

    assert rows.row_maker(WithDict) is WithDict
    assert rows.row_maker(Checked) is Checked


@dataclasses.dataclass(frozen=True, slots=True)
class _WithAFreshDefault:
    key: str
    tags: tuple[str, ...] = ()
    extra: list[str] = dataclasses.field(default_factory=list)


def test_a_row_with_a_default_made_per_row_is_made_by_its_own_class() -> None:
    make = rows.row_maker(_WithAFreshDefault)
    assert make("k") == _WithAFreshDefault("k")
    assert make("k").extra is not make("k").extra
