"""PartitionKey (contracts §3): typed values, the canonical ``k=tag:value,...`` text and its parsers.

Every parser here is strict and raises ``InvalidPartitionKey`` naming the bad input; ``render`` produces
the one canonical form, so ``render(parse(x)) == x`` is the test for canonical input.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from servo.core._key_text import IDENT_RE, b64u_decode_strict, b64u_encode
from servo.core.errors import InvalidPartitionKey

__all__ = [
    "I64_MAX",
    "I64_MIN",
    "MAX_PARTITION_KEY_LEN",
    "PartitionKey",
    "PartitionScalar",
    "PartitionTag",
    "PartitionValue",
    "display_partition_key",
    "parse_partition_key",
    "parse_partition_key_proto",
    "partition_id",
    "require_canonical_partition_key",
]

MAX_PARTITION_KEY_LEN = 1024
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1

PartitionTag = Literal["s", "i", "b", "d", "t", "n"]
_TAGS: frozenset[str] = frozenset("sibdtn")
_INT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)")
# Rust's i64 parser also takes a sign and leading zeros; parse accepts those (ASCII digits only) so that
# the API canonicality check can answer with the canonical spelling instead of a bare "bad integer".
_LENIENT_INT_RE = re.compile(r"[+-]?[0-9]+")
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TS_RE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.[0-9]{6}Z")
# Feb allows 29 in every year: the reference does not check leap years, and we must accept what it accepts.
_MAX_DAY = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_FIXTURE_TYPES: dict[str, PartitionTag] = {
    "string": "s",
    "int64": "i",
    "bool": "b",
    "date": "d",
    "timestamp": "t",
    "null": "n",
}


def _date_error(text: str) -> str | None:
    match = _DATE_RE.fullmatch(text)
    if not match:
        return "date must be YYYY-MM-DD"
    year, month, day = (int(g) for g in match.groups())
    if year < 1970:
        return "date year must be >= 1970"
    if not 1 <= month <= 12:
        return "date month must be 01-12"
    if not 1 <= day <= _MAX_DAY[month - 1]:
        return "date day is out of range for its month"
    return None


def _timestamp_error(text: str) -> str | None:
    match = _TS_RE.fullmatch(text)
    if not match:
        return "timestamp must be YYYY-MM-DDTHH:MM:SS.ffffffZ (27 characters)"
    date_error = _date_error(match.group(1))
    if date_error:
        return date_error
    hour, minute, second = (int(g) for g in match.groups()[1:])
    if hour > 23 or minute > 59 or second > 59:
        return "timestamp time of day is out of range"
    return None


def _int_error(text: str, *, strict: bool = True) -> str | None:
    if not (_INT_RE if strict else _LENIENT_INT_RE).fullmatch(text):
        return "int64 must match -?(0|[1-9][0-9]*)"
    if not I64_MIN <= int(text) <= I64_MAX:
        return "int64 is out of range"
    return None


PartitionScalar = str | int | bool | None


@dataclass(frozen=True, slots=True)
class PartitionValue:
    """One typed partition value.

    ``value`` is a ``str`` for ``s`` (the decoded text), ``d`` (``YYYY-MM-DD``) and ``t`` (27-char
    timestamp); an ``int`` for ``i``; a ``bool`` for ``b``; ``None`` for ``n``.
    """

    tag: PartitionTag
    value: PartitionScalar

    def __post_init__(self) -> None:
        error = self._error()
        if error:
            raise InvalidPartitionKey(
                f"invalid partition value {self.tag}:{self.value!r}: {error}",
                details={"tag": self.tag, "value": self.value},
            )

    def _error(self) -> str | None:
        tag, value = self.tag, self.value
        if tag == "s":
            if not isinstance(value, str):
                return "string value must be str"
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return "string value is not valid Unicode"
            return None
        if tag == "i":
            if not isinstance(value, int) or isinstance(value, bool):
                return "int64 value must be int"
            return None if I64_MIN <= value <= I64_MAX else "int64 is out of range"
        if tag == "b":
            return None if isinstance(value, bool) else "bool value must be bool"
        if tag == "d":
            return _date_error(value) if isinstance(value, str) else "date value must be str"
        if tag == "t":
            return _timestamp_error(value) if isinstance(value, str) else "timestamp value must be str"
        if tag == "n":
            return None if value is None else "null value must be None"
        return "unknown tag (expected one of s, i, b, d, t, n)"

    def display(self) -> str:
        """The value as its user wrote it: ``2025-03-01``, ``eu``, ``2025-03-01T10:00:00Z``, ``42``."""
        if self.tag == "t":
            assert isinstance(self.value, str)
            return self.value.replace(".000000Z", "Z")
        if self.tag == "b":
            return "true" if self.value else "false"
        if self.tag == "n":
            return "null"
        return str(self.value)

    def render(self) -> str:
        """The canonical ``tag:value`` text."""
        if self.tag == "s":
            assert isinstance(self.value, str)
            return "s:" + b64u_encode(self.value.encode("utf-8"))
        if self.tag == "b":
            return "b:true" if self.value else "b:false"
        if self.tag == "n":
            return "n:null"
        return f"{self.tag}:{self.value}"


def _parse_value(raw: str, text: str) -> PartitionValue:
    tag, found, body = text.partition(":")
    if not found:
        raise _bad_pk(raw, f"value {text!r} has no type tag (expected tag:value)")
    if tag not in _TAGS:
        raise _bad_pk(raw, f"unknown type tag {tag!r} (expected one of s, i, b, d, t, n)")
    error: str | None = None
    value: PartitionScalar = body
    if tag == "s":
        try:
            value = b64u_decode_strict(body).decode("utf-8")
        except ValueError as exc:  # UnicodeDecodeError is a ValueError
            error = f"string value is not canonical unpadded base64url of UTF-8 ({exc})"
    elif tag == "i":
        error = _int_error(body, strict=False)
        value = None if error else int(body)
    elif tag == "b":
        error = None if body in ("true", "false") else "bool must be 'true' or 'false'"
        value = body == "true"
    elif tag == "d":
        error = _date_error(body)
    elif tag == "t":
        error = _timestamp_error(body)
    elif tag == "n":
        error = None if body == "null" else "null must be written 'n:null'"
        value = None
    if error:
        raise _bad_pk(raw, error)
    return PartitionValue(tag, value)  # type: ignore[arg-type]


def _bad_pk(raw: object, reason: str) -> InvalidPartitionKey:
    return InvalidPartitionKey(f"invalid partition key {raw!r}: {reason}", details={"partition_key": raw})


@dataclass(frozen=True, slots=True)
class PartitionKey:
    """A multi-dimensional partition key; ``dimensions`` are kept sorted by key bytes.

    The empty key (no dimensions) is the unpartitioned key and renders as ``""``.
    """

    dimensions: tuple[tuple[str, PartitionValue], ...] = field(default=())

    def __post_init__(self) -> None:
        dims = tuple(self.dimensions)
        seen: set[str] = set()
        for key, value in dims:
            if not isinstance(key, str) or not IDENT_RE.fullmatch(key):
                raise _bad_pk(key, f"dimension key {key!r} must match [a-z][a-z0-9_]*")
            if key in seen:
                raise _bad_pk(key, f"duplicate dimension key {key!r}")
            if not isinstance(value, PartitionValue):
                raise _bad_pk(key, f"dimension {key!r} value must be a PartitionValue")
            seen.add(key)
        object.__setattr__(self, "dimensions", tuple(sorted(dims, key=lambda d: d[0].encode("utf-8"))))

    @classmethod
    def of(cls, dims: Mapping[str, PartitionValue]) -> PartitionKey:
        """Build from a mapping of dimension name to value."""
        return cls(tuple(dims.items()))

    @classmethod
    def from_dimensions(cls, dims: Mapping[str, Any]) -> PartitionKey:
        """Build from the fixture form ``{name: (type, value_as_string)}`` or ``{name: {type, value}}``.

        ``type`` is one of ``string, int64, bool, date, timestamp, null``; strings are taken verbatim.
        """
        built: list[tuple[str, PartitionValue]] = []
        for name, spec in dims.items():
            if isinstance(spec, Mapping):
                type_name, text = spec.get("type"), spec.get("value")
            elif isinstance(spec, tuple | list) and len(spec) == 2:
                type_name, text = spec
            else:
                raise _bad_pk(name, f"dimension {name!r} must be (type, value)")
            tag = _FIXTURE_TYPES.get(type_name) if isinstance(type_name, str) else None
            if tag is None or not isinstance(text, str):
                raise _bad_pk(
                    name, f"dimension {name!r} has unknown type {type_name!r} or a non-string value"
                )
            if tag == "i" and _int_error(text):
                raise _bad_pk(name, f"dimension {name!r}: {_int_error(text)}")
            encoded = "s:" + b64u_encode(text.encode("utf-8")) if tag == "s" else f"{tag}:{text}"
            built.append((name, _parse_value(f"{name}={encoded}", encoded)))
        return cls(tuple(built))

    def render(self) -> str:
        """The canonical string ``k=tag:value,...`` with keys sorted by bytes (``""`` when empty)."""
        return ",".join(f"{key}={value.render()}" for key, value in self.dimensions)

    def display(self) -> str:
        """The key in the user's words, never the wire encoding: the bare value of a one-dimension
        key (``2025-03-01``), else ``date=2025-03-01, region=eu``; ``""`` when unpartitioned."""
        if len(self.dimensions) == 1:
            return self.dimensions[0][1].display()
        return ", ".join(f"{key}={value.display()}" for key, value in self.dimensions)

    def get(self, key: str) -> PartitionValue | None:
        return dict(self.dimensions).get(key)

    @property
    def is_unpartitioned(self) -> bool:
        return not self.dimensions

    def __str__(self) -> str:
        return self.render()


def parse_partition_key(s: str) -> PartitionKey:
    """Parse a partition key string (contracts §3); ``""`` is the unpartitioned key.

    Accepts non-canonical order and integer spellings Rust accepts; see
    :func:`require_canonical_partition_key` for the API check.

    Raises:
        InvalidPartitionKey: for every rejection listed in contracts §3.
    """
    if not isinstance(s, str):
        raise _bad_pk(s, "must be a string")
    if len(s) > MAX_PARTITION_KEY_LEN:
        raise _bad_pk(s[:64] + "...", f"longer than {MAX_PARTITION_KEY_LEN} characters")
    if not s.isascii():
        raise _bad_pk(s, "must be ASCII (string values are base64url-encoded)")
    if s == "":
        return PartitionKey()
    dims: list[tuple[str, PartitionValue]] = []
    seen: set[str] = set()
    for part in s.split(","):
        key, found, text = part.partition("=")
        if not found:
            raise _bad_pk(s, f"dimension {part!r} is missing '='")
        if not IDENT_RE.fullmatch(key):
            raise _bad_pk(s, f"dimension key {key!r} must match [a-z][a-z0-9_]*")
        if key in seen:
            raise _bad_pk(s, f"duplicate dimension key {key!r}")
        seen.add(key)
        dims.append((key, _parse_value(s, text)))
    return PartitionKey(tuple(dims))


def display_partition_key(s: str | None) -> str:
    """A stored (canonical) partition key in the user's words (see ``PartitionKey.display``); text
    that does not parse is shown as it is."""
    if not s:
        return ""
    try:
        return parse_partition_key(s).display()
    except InvalidPartitionKey:
        return s


def partition_values(s: str | None) -> dict[str, str] | None:
    """A stored (canonical) partition key as ``{dimension: value}`` in the user's words, the form the
    API shows beside the wire ``partitionKey``; ``None`` when unpartitioned or unparsable."""
    if not s:
        return None
    try:
        key = parse_partition_key(s)
    except InvalidPartitionKey:
        return None
    return {name: value.display() for name, value in key.dimensions} or None


def require_canonical_partition_key(s: str) -> str:
    """Return ``s`` if it is a canonical partition key, else raise.

    Raises:
        InvalidPartitionKey: unparsable, or ``render(parse(s)) != s`` (message
            ``partitionKey must be canonical: expected '<c>'``).
    """
    canonical = parse_partition_key(s).render()
    if canonical != s:
        raise InvalidPartitionKey(
            f"partitionKey must be canonical: expected '{canonical}'",
            details={"partition_key": s, "expected": canonical},
        )
    return s


def partition_id(asset_uuid: str, pk: str) -> str:
    """``part_`` + hex(sha256(``{asset_uuid}:{pk}``))[:32]."""
    return "part_" + hashlib.sha256(f"{asset_uuid}:{pk}".encode()).hexdigest()[:32]


_PROTO_KINDS: dict[str, PartitionTag] = {
    "stringValue": "s",
    "int64Value": "i",
    "boolValue": "b",
    "dateValue": "d",
    "timestampValue": "t",
    "nullValue": "n",
}
_PROTO_NULLS = (None, "NULL_VALUE_UNSPECIFIED", 0)


def _proto_value(name: str, value: object) -> PartitionValue:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise _bad_pk(name, f"dimension {name!r} value must hold exactly one typed field")
    ((kind, raw),) = value.items()
    tag = _PROTO_KINDS.get(kind)
    if tag is None:
        raise _bad_pk(name, f"dimension {name!r} has unknown value field {kind!r}")
    if tag == "i":
        # proto3 JSON writes int64 as a string; numbers are accepted too, bools never.
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str) or _int_error(raw):
            raise _bad_pk(name, f"dimension {name!r} int64Value {raw!r} is not an int64")
        return PartitionValue("i", int(raw))
    if tag == "b":
        if not isinstance(raw, bool):
            raise _bad_pk(name, f"dimension {name!r} boolValue must be true or false")
        return PartitionValue("b", raw)
    if tag == "n":
        if isinstance(raw, bool) or raw not in _PROTO_NULLS:
            raise _bad_pk(name, f"dimension {name!r} nullValue must be NULL_VALUE_UNSPECIFIED")
        return PartitionValue("n", None)
    if not isinstance(raw, str):
        raise _bad_pk(name, f"dimension {name!r} {kind} must be a string")
    return PartitionValue(tag, raw)


def parse_partition_key_proto(obj: Mapping[str, Any]) -> PartitionKey:
    """Parse the structured (v2) proto-JSON partition key ``{dimensions:[{name, value:{kindValue}}]}``.

    Raises:
        InvalidPartitionKey: the legacy v1 map form ``{dimensions:{name:{...}}}`` or any malformed field.
    """
    if not isinstance(obj, Mapping):
        raise _bad_pk(obj, "proto partition key must be an object")
    dims = obj.get("dimensions", [])
    if isinstance(dims, Mapping):
        raise _bad_pk(
            "dimensions", "this is the legacy v1 map form of PartitionKey; send dimensions as [{name, value}]"
        )
    if not isinstance(dims, list):
        raise _bad_pk("dimensions", "dimensions must be a list of {name, value}")
    built: list[tuple[str, PartitionValue]] = []
    for entry in dims:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise _bad_pk(entry, "each dimension must be {name, value}")
        built.append((entry["name"], _proto_value(entry["name"], entry.get("value"))))
    return PartitionKey(tuple(built))
