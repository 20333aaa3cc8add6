"""Errors the SDK raises about a project's code: bad declarations, failed discovery, invalid graphs.

All are ``InvalidInput`` (the user's input is the code), and each message starts with ``file:line`` so
an editor can jump to the cause.
"""

from __future__ import annotations

from servo.core.errors import InvalidInput


class AssetDefinitionError(InvalidInput, TypeError):
    """An ``@asset`` declaration that cannot work (bad parameter, bad option); raised at decoration.

    It is also a ``TypeError``, which is what Python raises for a function used with the wrong shape.
    """


class DiscoveryError(InvalidInput):
    """Strict discovery found problems (import errors, duplicate keys); ``details["problems"]`` lists them."""


class ManifestValidationError(InvalidInput):
    """The asset graph cannot be deployed (unknown dependency, duplicate key, cycle)."""
