"""The writer table's IAM conditions, evaluated on object names. IAM Conditions' extract(template)
returns the text between the template's literal prefix and the first following occurrence of its
literal suffix ("" when either is missing); startsWith/endsWith are plain."""

from __future__ import annotations

import re
from typing import Any

from tests.infra.conftest import GIVEN

OVERWRITE = "roles/storage.objectUser"
CREATE = "roles/storage.objectCreator"
# What each role allows: objectUser creates, overwrites and deletes; objectCreator only creates.
ALLOWS = {CREATE: {"create"}, OVERWRITE: {"create", "put", "delete"}}

_TERM = re.compile(r'resource\.name\.(extract|startsWith|endsWith)\("((?:[^"\\]|\\.)*)"\)(?: (==|!=) "")?')


def _extract(name: str, template: str) -> str:
    prefix, suffix = template.split("{scope}")
    start = name.find(prefix)
    if start < 0:
        return ""
    end = name.find(suffix, start + len(prefix))
    return "" if end < 0 else name[start + len(prefix) : end]


def holds(expression: str, object_name: str) -> bool:
    name = f"{GIVEN['object_prefix']}/{object_name}"
    for term in expression.split(" && "):
        match = _TERM.fullmatch(term)
        assert match, term
        fn, arg, op = match.groups()
        if fn == "extract":
            value = _extract(name, arg)
            ok = value != "" if op == "!=" else value == ""
        else:
            ok = name.startswith(arg) if fn == "startsWith" else name.endswith(arg)
        if not ok:
            return False
    return True


def may_write(core_locals: dict[str, Any], fn: str, object_name: str, role: str) -> bool:
    """Whether a grant of exactly ``role`` lets ``fn`` write ``object_name``."""
    grants = core_locals["write_grants"]
    return any(
        holds(core_locals["write_conditions"][key], object_name)
        for key, g in grants.items()
        if g["fn"] == fn and g["role"] == role
    )


def may(core_locals: dict[str, Any], fn: str, op: str, object_name: str) -> bool:
    """Whether any of ``fn``'s grants allows the store operation ``op`` on ``object_name``."""
    return any(op in ops and may_write(core_locals, fn, object_name, role) for role, ops in ALLOWS.items())
