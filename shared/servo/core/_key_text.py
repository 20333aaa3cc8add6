"""The lexical pieces every key shares: the identifier pattern and strict unpadded base64url.

Asset keys, partition keys and ct1_ task ids all build on these. They live in their own module because
``keys`` imports ``partition_keys`` (task keys embed a partition key), so ``partition_keys`` cannot take
them from ``keys`` without an import cycle.
"""

from __future__ import annotations

import base64
import binascii
import re

IDENT = r"[a-z][a-z0-9_]*"
IDENT_RE = re.compile(IDENT)


def b64u_encode(data: bytes) -> str:
    """RFC 4648 §5 base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64U_RE = re.compile(r"[A-Za-z0-9_-]*")


def b64u_decode_strict(text: str) -> bytes:
    """Decode unpadded base64url, rejecting ``=``, foreign characters and non-canonical trailing bits.

    Raises:
        ValueError: ``text`` is not the canonical unpadded base64url of any byte string.
    """
    if not _B64U_RE.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not unpadded base64url") from exc
    # Non-zero trailing bits decode fine but would give two spellings of one value.
    if b64u_encode(data) != text:
        raise ValueError("non-canonical base64url (trailing bits)")
    return data
