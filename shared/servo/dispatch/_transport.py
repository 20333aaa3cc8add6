"""The Transport port: one request to one endpoint and its whole answer (the local stacks' hops).

The local dispatcher delivers tasks, and the worker reports its callbacks, through ``deliver``. Two
adapters keep one contract (tests/dispatch/test_transport_contract.py): ``HttpTransport`` sends the
request over HTTP with requests; ``InProcessTransport`` (``_inprocess``) hands it to an endpoint of
this process, for ``servo dev``'s worker and control plane, which share one process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import requests

from servo.dispatch._http import EnvOnceSession


class TransportError(Exception):
    """No answer came: the target could not be reached, went away or failed to answer in time.

    As on HTTP, the request may or may not have been acted on; callers retry with idempotent requests.
    """


class TransportTimeout(TransportError):
    """The target took longer than the request's timeout to answer (it may still be working on it)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An endpoint's answer: its status, its body and its headers (names as the endpoint wrote them)."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """The header ``name``, looked up regardless of case."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; ``{}`` when it is empty, not JSON or not an object."""
        if not self.body:
            return {}
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """A request as an endpoint receives it: ``path`` percent-decoded, ``query`` the raw query string,
    ``headers`` with lower-cased names (``host`` and ``content-length`` included, as a server sees them)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


@runtime_checkable
class Endpoint(Protocol):
    """What answers requests in this process (the worker, the local control plane)."""

    def serve(self, request: InboundRequest) -> Reply: ...


@runtime_checkable
class Transport(Protocol):
    """Sends one request and returns the endpoint's answer, whatever its status."""

    def deliver(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, *, timeout_s: float
    ) -> Reply:
        """POST (or ``method``) ``body`` to ``url`` with ``headers``; redirects are not followed.

        Raises:
            TransportTimeout: no answer within ``timeout_s``.
            TransportError: the target could not be reached or gave no answer.
        """
        ...


# Built once: json.dumps with an option builds an encoder on every call.
_REQUEST_ENCODER = json.JSONEncoder(allow_nan=False)


def json_request_body(value: Any) -> bytes:
    """A JSON request body, written as requests writes its ``json=`` bodies (NaN refused)."""
    return _REQUEST_ENCODER.encode(value).encode("utf-8")


class HttpTransport:
    """Requests over HTTP with requests.

    Args:
        session: the session every request goes through (one per worker, shared by its threads, as
            before); None gives each calling thread a keep-alive session of its own.
    """

    def __init__(self, session: requests.Session | None = None) -> None:
        self._session = session
        self._local = threading.local()

    def _current(self) -> requests.Session:
        if self._session is not None:
            return self._session
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = EnvOnceSession()
        return session

    def deliver(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, *, timeout_s: float
    ) -> Reply:
        try:
            response = self._current().request(
                method, url, data=body, headers=dict(headers), timeout=timeout_s, allow_redirects=False
            )
        except requests.Timeout as exc:
            raise TransportTimeout(f"{type(exc).__name__}: {exc}") from exc
        except requests.RequestException as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        return Reply(response.status_code, response.content, dict(response.headers))
