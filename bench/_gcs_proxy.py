"""GCS operations counted on the wire: a reverse proxy in front of fake-gcs-server.

In emulator mode the store lives in the function processes, so the port counter of the embedded
bench cannot see it. The functions' ``STORAGE_EMULATOR_HOST`` points here instead; every JSON-API
request is passed through unchanged and tallied as GCS bills it: object uploads, patches, composes
and deletes as writes, bucket listings as lists (both Class A), object and metadata GETs as reads
(Class B). Deletes are free on GCS; they are tallied as writes, like the port counter does.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

import requests
from werkzeug.serving import BaseWSGIServer, make_server

from bench._instrument import prefix_of

# Ledger bodies are canonical JSON, so the type is always written exactly this way.
_EVENT_TYPE = re.compile(rb'"event_type":"([A-Za-z]+)"')

_LIST = re.compile(r"/storage/v1/b/[^/]+/o/?")
_OBJECT = re.compile(r"/(?:download/)?storage/v1/b/[^/]+/o/([^/]+)(/.*)?")
_UPLOAD = re.compile(r"/upload/storage/v1/b/[^/]+/o/?")
# The multipart upload's first part is the object's JSON metadata, which names it.
_UPLOAD_NAME = re.compile(rb'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


def classify(method: str, path: str, query: str, body: bytes = b"") -> tuple[str, str] | None:
    """``(op, object name)`` of one JSON-API request (op: read, write or list), or None if not billed
    per object (bucket metadata, the emulator's own endpoints)."""
    args = parse_qs(query)
    if _UPLOAD.fullmatch(path) and method in ("POST", "PUT"):
        name = args.get("name", [""])[0]
        if not name and (named := _UPLOAD_NAME.search(body)):
            name = named.group(1).decode("utf-8", "replace")
        return "write", name
    if _LIST.fullmatch(path) and method == "GET":
        return "list", args.get("prefix", [""])[0]
    if (found := _OBJECT.fullmatch(path)) is not None:
        name = unquote(found.group(1))
        return ("read" if method == "GET" else "write"), name
    return None


class CountingGcsProxy:
    """Threaded reverse proxy that tallies operations by object prefix (``bench._instrument.prefix_of``).

    Requests wait until ``upstream`` is set: the functions get this address before fake-gcs-server
    (and so its port) exists.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._upstream = ""
        self._local = threading.local()
        self.ops: Counter[tuple[str, str]] = Counter()
        self.ledger_types: Counter[str] = Counter()
        self.requests = 0
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="gcs-proxy", daemon=True)

    @property
    def host(self) -> str:
        """``http://127.0.0.1:PORT``, the value for ``STORAGE_EMULATOR_HOST``."""
        return f"http://127.0.0.1:{self._server.port}"

    def start(self) -> CountingGcsProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)

    def set_upstream(self, endpoint: str) -> None:
        self._upstream = endpoint.rstrip("/")
        self._ready.set()

    # -- the tally, with the same reading interface as PrefixTally ---------------------------------

    def reset(self) -> None:
        with self._lock:
            self.ops.clear()
            self.ledger_types.clear()
            self.requests = 0

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.ops)

    def ledger_snapshot(self) -> dict[str, int]:
        """Ledger objects uploaded since the last reset, by event type."""
        with self._lock:
            return dict(self.ledger_types)

    @property
    def run_triggered_at(self) -> dict[str, float]:
        return {}  # the store is in other processes: the load's lag is bracketed instead

    def wait_quiet(self, quiet_s: float, timeout: float) -> bool:
        """Wait until no request has come for ``quiet_s`` (the functions are done for now)."""
        deadline = time.monotonic() + timeout
        seen, since = self.request_count(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.request_count()
            if now != seen:
                seen, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return True
        return False

    def request_count(self) -> int:
        with self._lock:
            return self.requests

    # -- the proxy ------------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not self._ready.wait(60):
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"the counting proxy has no upstream yet"]
        method = environ["REQUEST_METHOD"]
        # The raw URI keeps an object name's %2F; PATH_INFO has it decoded into path segments.
        raw = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
        path, _, query = raw.partition("?")
        query = query or environ.get("QUERY_STRING", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        op = classify(method, path, query, body)
        with self._lock:
            self.requests += 1
            if op is not None:
                self.ops[(prefix_of(op[1]), op[0])] += 1
                if op[0] == "write" and "/ledger/" in f"/{op[1]}" and (found := _EVENT_TYPE.search(body)):
                    self.ledger_types[found.group(1).decode()] += 1
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in _HOP_BY_HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        url = f"{self._upstream}{path}" + (f"?{query}" if query else "")
        reply = self._session().request(method, url, data=body, headers=headers, stream=True, timeout=60)
        data = reply.raw.read(decode_content=False)
        passed = [(k, v) for k, v in reply.headers.items() if k.lower() not in _HOP_BY_HOP]
        passed.append(("Content-Length", str(len(data))))
        start_response(f"{reply.status_code} {reply.reason}", passed)
        return [data]
