"""The HTTP session of the local dispatcher and the worker's callbacks: requests, reading the
environment once per target instead of on every request.

requests re-reads the environment (each ``*_proxy`` variable, the ``no_proxy`` list, the CA bundle
variables) for every request it sends: on the local stack that was about a third of the client's CPU
for a small callback. The environment of a worker or a dispatcher does not change while it runs.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit

import requests

_MAX_TARGETS = 256


class EnvOnceSession(requests.Session):
    """A ``requests.Session`` whose environment settings are worked out once per target and kept."""

    def __init__(self) -> None:
        super().__init__()
        self._env_settings: dict[tuple[Any, ...], Any] = {}

    def merge_environment_settings(
        self,
        url: str | bytes | None,
        proxies: MutableMapping[str, str] | None,
        stream: Any,
        verify: Any,
        cert: Any,
    ) -> Any:
        if proxies or not self.trust_env or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        target = urlsplit(url)
        # Everything the answer depends on besides the environment: the target and the session's own
        # settings (which a caller may change between requests).
        key = (
            target.scheme,
            target.netloc,
            stream,
            verify,
            cert,
            self.stream,
            self.verify,
            self.cert,
            tuple(sorted(self.proxies.items())),
        )
        try:
            found = self._env_settings.get(key)
        except TypeError:  # an unhashable setting (a list for cert): not kept
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        if found is None:
            found = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if len(self._env_settings) >= _MAX_TARGETS:
                self._env_settings.clear()
            self._env_settings[key] = found
        return {name: dict(value) if isinstance(value, dict) else value for name, value in found.items()}
