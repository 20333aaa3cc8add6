"""Canonical JSON (contracts §1, ADR-010): the byte form of ledger events and hash preimages.

Rules: object keys sorted by their UTF-8 bytes (recursively), no whitespace, integers only in
−2⁶³ … 2⁶⁴−1, every float rejected, raw UTF-8 strings. The output is byte-identical to serde_json's
compact writer over a sorted map, which is what the Rust reference hashes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from servo.core.errors import CanonicalJsonError

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _child_path(path: str, key: str) -> str:
    if _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=True)}]"


def _check_str(value: str, path: str) -> None:
    # A lone surrogate has no UTF-8 form; serde_json could never have produced it.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJsonError(
            f"canonical JSON: string at {path} is not valid Unicode (lone surrogate)", details={"path": path}
        ) from exc


def _normalize(value: object, path: str, allow_floats: bool = False) -> Any:
    """Validate ``value`` and return a copy whose dicts iterate in UTF-8 byte order of their keys."""
    if value is None or isinstance(value, bool) or (allow_floats and isinstance(value, float)):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise CanonicalJsonError(
                f"canonical JSON: integer at {path} is out of range (-2^63..2^64-1)", details={"path": path}
            )
        return int(value)
    if isinstance(value, str):
        _check_str(value, path)
        return value
    if isinstance(value, float):
        raise CanonicalJsonError(
            f"canonical JSON: float at {path} is not allowed (use an integer or a string)",
            details={"path": path},
        )
    if isinstance(value, list | tuple):
        return [_normalize(item, f"{path}[{i}]", allow_floats) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        items: list[tuple[bytes, str, Any]] = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJsonError(
                    f"canonical JSON: object key {key!r} at {path} is not a string", details={"path": path}
                )
            _check_str(key, path)
            child = _child_path(path, key)
            items.append((key.encode("utf-8"), key, _normalize(item, child, allow_floats)))
        items.sort(key=lambda entry: entry[0])
        return {key: item for _, key, item in items}
    raise CanonicalJsonError(
        f"canonical JSON: value of type {type(value).__name__} at {path} is not encodable",
        details={"path": path},
    )


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain(value: object) -> bool:
    """Whether ``value`` holds only exact dicts with string keys, lists, tuples, valid strings,
    in-range ints, bools and None: what ``json.dumps(sort_keys=True)`` writes canonically as is.

    Sorting keys by code point is sorting them by their UTF-8 bytes (UTF-8 keeps code point order),
    so such a value needs no normalized copy; anything else (a float, a Mapping that is not a dict, an
    int subclass, a lone surrogate) takes :func:`_normalize`, which copies, or names the bad path.
    """
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        kind = type(item)
        if kind is str:
            if not _encodable(item):
                return False
        elif kind is dict:
            for key in item:
                if type(key) is not str or not _encodable(key):
                    return False
            todo.extend(item.values())
        elif kind is list or kind is tuple:
            todo.extend(item)
        elif kind is int:
            if not INT_MIN <= item <= INT_MAX:
                return False
        elif item is not None and kind is not bool:
            return False
    return True


def canonical_dumps(value: object) -> str:
    """Encode ``value`` as canonical JSON text.

    Raises:
        CanonicalJsonError: a float, an out-of-range integer, a non-string key, a lone surrogate or an
            unsupported type; the message names the JSON path of the offending value.
    """
    try:
        # Python's escaper matches serde_json: short escapes where they exist, lowercase \u00XX otherwise,
        # everything else (DEL, '/', U+2028, non-ASCII) raw.
        if _plain(value):
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        normalized = _normalize(value, "$")
        return json.dumps(normalized, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except RecursionError as exc:
        raise CanonicalJsonError("canonical JSON: value is nested too deeply") from exc


def canonical_bytes(value: object) -> bytes:
    """Encode ``value`` as canonical JSON UTF-8 bytes (see :func:`canonical_dumps`)."""
    return canonical_dumps(value).encode("utf-8")


def _reject_float(text: str) -> Any:
    raise CanonicalJsonError(f"JSON: float {text} is not allowed")


def _reject_constant(text: str) -> Any:
    raise CanonicalJsonError(f"JSON: {text} is not allowed")


# The widest integer in range has 20 digits; a longer text is refused before int() (whose cost grows
# with the length, and which refuses more than 4,300 digits with a bare ValueError).
_MAX_INT_DIGITS = len(str(INT_MAX))


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"
        raise CanonicalJsonError(f"JSON: integer {shown} is out of range (-2^63..2^64-1)")
    number = int(text)
    if not INT_MIN <= number <= INT_MAX:
        raise CanonicalJsonError(f"JSON: integer {text} is out of range (-2^63..2^64-1)")
    return number


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    seen: set[str] = set()
    for key, _ in pairs:  # the first key given twice is the one named
        if key in seen:
            raise CanonicalJsonError(f"JSON: duplicate object key {key!r}", details={"key": key})
        seen.add(key)
    raise AssertionError("unreachable: fewer keys than pairs means a key repeats")


def _strict_decoder(allow_floats: bool) -> json.JSONDecoder:
    return json.JSONDecoder(
        parse_float=float if allow_floats else _reject_float,
        parse_int=_parse_int,
        parse_constant=_reject_constant,
        object_pairs_hook=_unique_object,
    )


# Built once: json.loads with hooks builds a decoder (and its scanner) on every call.
_DECODERS = {False: _strict_decoder(False), True: _strict_decoder(True)}


def loads_strict(data: bytes | str, *, allow_floats: bool = False) -> Any:
    """Parse JSON, rejecting what canonical JSON cannot hold.

    Rejects floats (unless ``allow_floats``: request bodies may carry them), NaN/±Infinity, integers
    outside −2⁶³ … 2⁶⁴−1, duplicate object keys, invalid UTF-8, lone surrogates (including escaped
    ones) and nesting deeper than the parser's recursion limit.

    Raises:
        CanonicalJsonError: on any of the above or on malformed JSON.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CanonicalJsonError(f"JSON: invalid UTF-8 at byte {exc.start}") from exc
    else:
        text = data
    try:
        if text.startswith("\ufeff"):  # as json.loads refuses it (the decoder alone would not say why)
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODERS[allow_floats].decode(text)
        # Escaped lone surrogates (\ud800) parse into str but have no UTF-8 form; without a \u escape
        # in valid UTF-8 text there can be none, so only such a text is walked.
        if "\\u" in text or (data is text and not _encodable(text)):
            _normalize(value, "$", allow_floats)
    except json.JSONDecodeError as exc:
        raise CanonicalJsonError(
            f"JSON: malformed at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:
        raise CanonicalJsonError("JSON: value is nested too deeply") from exc
    return value


def is_canonical(data: bytes) -> bool:
    """True iff ``data`` parses strictly and re-encodes to exactly the same bytes."""
    try:
        return canonical_bytes(loads_strict(data)) == bytes(data)
    except CanonicalJsonError:
        return False
