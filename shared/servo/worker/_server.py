"""The worker's HTTP surface (user-surface §4): ``POST /dispatch``, ``POST /sensor-evaluations``
(automation §6.2) and ``GET /health``.

Status codes are chosen for Cloud Tasks: 200 means "done, do not redeliver" (the attempt was reported,
or the control plane said it must not run); 500 means "redeliver" (the control plane could not be told);
503 with ``Retry-After`` means "busy, try later" (the same dispatch is already running here, or the
worker is at its concurrency limit); 400/401 are permanent refusals of a bad request.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import requests
from flask import Flask
from flask import request as flask_request
from werkzeug.wrappers import Response

from servo.core.errors import InvalidMessage
from servo.core.protocol import DispatchEnvelope
from servo.dispatch import (
    EnvOnceSession,
    HttpTransport,
    InboundRequest,
    Reply,
    Transport,
    TransportError,
)
from servo.dispatch._wsgi import inbound_request, wsgi_response
from servo.sdk import CODE_VERSION_PREFIX
from servo.sdk._sensors import SensorDefinition
from servo.worker._callbacks import CallbackUnavailable
from servo.worker._invoke import AssetFunction
from servo.worker._logstream import DEFAULT_FLUSH_INTERVAL_S
from servo.worker._runner import RunnerConfig, run_attempt
from servo.worker._sensors import Envelope as SensorEnvelope
from servo.worker._sensors import EnvelopeError, SensorLoader
from servo.worker._sensors import evaluate as evaluate_sensor
from servo.worker._sensors import report as report_sensor

logger = logging.getLogger("servo.worker")

Loader = Callable[[], tuple[Mapping[str, AssetFunction], str]]

# Remember this many finished dispatches, so a redelivery of one that was already reported is a no-op.
DONE_DISPATCH_MEMORY = 1024

_JSON = {"Content-Type": "application/json"}


# As Flask's jsonify wrote it: compact, keys sorted (built once, not for every answer).
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def _json(status: int, value: Any, **headers: str) -> Reply:
    body = _ENCODER.encode(value).encode() + b"\n"  # and a newline at the end
    return Reply(status, body, {**_JSON, **headers})


def _error(status: int, code: str, message: str, **headers: str) -> Reply:
    return _json(status, {"code": code, "message": message}, **headers)


def _json_body(request: InboundRequest) -> Any:
    """The body as JSON when it is declared JSON and parses (Flask's ``get_json(silent=True)``), else None."""
    mimetype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if mimetype != "application/json" and not (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    ):
        return None
    try:
        return json.loads(request.body)
    except ValueError:
        return None


class _Claims:
    """Dispatch ids in flight and the most recently finished ones."""

    def __init__(self, max_in_flight: int) -> None:
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._done: OrderedDict[str, None] = OrderedDict()
        self._max = max_in_flight

    def claim(self, dispatch_id: str) -> str:
        """``claimed``, ``busy`` (same id running), ``full`` (at capacity) or ``done`` (already reported)."""
        with self._lock:
            if dispatch_id in self._in_flight:
                return "busy"
            if dispatch_id in self._done:
                return "done"
            if len(self._in_flight) >= self._max:
                return "full"
            self._in_flight.add(dispatch_id)
            return "claimed"

    def release(self, dispatch_id: str, *, done: bool) -> None:
        with self._lock:
            self._in_flight.discard(dispatch_id)
            if done:
                self._done[dispatch_id] = None
                while len(self._done) > DONE_DISPATCH_MEMORY:
                    self._done.popitem(last=False)


class WorkerApp:
    """A worker serving one project's assets: a WSGI app, and an Endpoint (``serve``) of the Transport
    port, which ``servo dev`` calls in process. Both answer through ``serve``.

    Args:
        assets: asset key (``ns.name``) → the ``@asset`` function.
        code_version: the version of the code ``assets`` came from (``servo.sdk.code_version``); a
            dispatch whose payload names another ``codeVersion`` is refused (FAILED, CONFIGURATION).
        loader: when set, called to load the project again (assets, code version) before refusing.
        dispatch_secret: shared secret the dispatcher sends (``X-Servo-Dispatch-Secret`` or
            ``Authorization: Bearer``); empty means every dispatch is refused.
        worker_id: reported in every callback.
        tenant_id / workspace_id: when set, envelopes for another scope are refused (400).
        api_url: when set, the envelope's ``callbackBaseUrl`` must equal it (400 otherwise), so a forged
            envelope cannot make the worker send its task token elsewhere.
        http: session for the callbacks over HTTP (one per worker; a new one when None).
        transport: how the callbacks reach the control plane; None = HTTP through ``http``.
        max_concurrency: attempts run at once; beyond that dispatches get 503.
        heartbeat_interval_s / cancel_grace_s / callback_tries / callback_backoff_s / log_flush_interval_s:
            see RunnerConfig.
    """

    def __init__(
        self,
        assets: Mapping[str, AssetFunction],
        *,
        dispatch_secret: str,
        code_version: str | None = None,
        loader: Loader | None = None,
        worker_id: str,
        tenant_id: str | None = None,
        workspace_id: str | None = None,
        api_url: str | None = None,
        http: requests.Session | None = None,
        transport: Transport | None = None,
        max_concurrency: int = 8,
        heartbeat_interval_s: float | None = None,
        cancel_grace_s: float = 30.0,
        callback_tries: int = 4,
        callback_backoff_s: float = 0.25,
        log_flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        sensors: SensorLoader | None = None,
    ) -> None:
        # Assets and the code version they came from change together (a reload swaps the pair).
        self._code: tuple[dict[str, AssetFunction], str | None] = (dict(assets), code_version)
        self._loader = loader
        self._reload_lock = threading.Lock()
        self._secret = dispatch_secret.encode()
        self._tenant_id = tenant_id
        self._workspace_id = workspace_id
        self._api_url = api_url.rstrip("/") if api_url else None
        self._transport = transport or HttpTransport(http if http is not None else EnvOnceSession())
        self._claims = _Claims(max_concurrency)
        self.config = RunnerConfig(
            worker_id=worker_id,
            heartbeat_interval_s=heartbeat_interval_s,
            cancel_grace_s=cancel_grace_s,
            callback_tries=callback_tries,
            callback_backoff_s=callback_backoff_s,
            log_flush_interval_s=log_flush_interval_s,
        )
        self._routes: dict[tuple[str, str], Callable[[InboundRequest], Reply]] = {
            ("GET", "/health"): self._health,
            ("POST", "/dispatch"): self._dispatch,
            ("POST", "/sensor-evaluations"): self._sensor_evaluation,
        }
        self.flask = Flask("servo.worker")
        for method, path in self._routes:
            self.flask.add_url_rule(path, path, self._over_http, methods=[method])
        self._sensor_loader = sensors
        self._sensors: Mapping[str, SensorDefinition] | None = None

    @property
    def assets(self) -> dict[str, AssetFunction]:
        return self._code[0]

    @property
    def code_version(self) -> str | None:
        return self._code[1]

    def _asset_for(self, env: DispatchEnvelope) -> tuple[AssetFunction | None, str | None]:
        """The function to run, or None and why not: a task planned with code this worker does not
        hold is refused (after one reload from disk, when the worker has a loader). Only versions
        ``servo deploy`` computed (``src-…``) can be checked; any other name is taken on trust."""
        wanted = env.payload.get("codeVersion")
        assets, held = self._code
        checkable = isinstance(wanted, str) and wanted.startswith(CODE_VERSION_PREFIX)
        if checkable and held is not None and wanted != held:
            if self._loader is not None:
                with self._reload_lock:
                    if self._code[1] != wanted:
                        loaded, version = self._loader()
                        self._code = (dict(loaded), version)
                        logger.info("reloaded the project: code version %s -> %s", held, version)
                assets, held = self._code
            if wanted != held:
                return None, (
                    f"this worker holds code version {held}, but the run was deployed with {wanted}: "
                    "deploy the code this worker serves (`servo deploy`), or serve the deployed code"
                )
        return assets.get(env.task_key), None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.flask(environ, start_response)

    def _over_http(self) -> Response:
        return wsgi_response(self.serve(inbound_request(flask_request)))

    def serve(self, request: InboundRequest) -> Reply:
        """Answer one request (the Endpoint of the Transport port); HTTP requests come through here too."""
        # HEAD is GET without the body (the server leaves the body out).
        method = "GET" if request.method == "HEAD" else request.method
        route = self._routes.get((method, request.path))
        if route is not None:
            return route(request)
        if any(path == request.path for _, path in self._routes):
            allowed = ", ".join(m for m, path in self._routes if path == request.path)
            return _error(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed", Allow=allowed)
        return _error(404, "NOT_FOUND", f"no route for {request.method} {request.path}")

    def _health(self, request: InboundRequest) -> Reply:
        return Reply(200, b"ok", {"Content-Type": "text/plain; charset=utf-8"})

    def _authorized(self, request: InboundRequest) -> bool:
        if not self._secret:
            return False
        offered = [request.headers.get("x-servo-dispatch-secret", "")]
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            offered.append(auth[7:].strip())
        # compare_digest on every candidate, so timing says nothing about which one was close.
        return any([hmac.compare_digest(o.encode(), self._secret) for o in offered if o])

    def _scope_error(self, env: DispatchEnvelope) -> str | None:
        if self._tenant_id is not None and env.tenant_id != self._tenant_id:
            return f"tenantId {env.tenant_id!r} is not this worker's tenant {self._tenant_id!r}"
        if self._workspace_id is not None and env.workspace_id != self._workspace_id:
            return f"workspaceId {env.workspace_id!r} is not this worker's workspace {self._workspace_id!r}"
        if self._api_url is not None and env.callback_base_url.rstrip("/") != self._api_url:
            return f"callbackBaseUrl {env.callback_base_url!r} is not this worker's API {self._api_url!r}"
        return None

    def _sensor(self, sensor_id: str) -> SensorDefinition | None:
        """The sensor to call; an id this worker does not know loads the project again once."""
        if self._sensor_loader is None:
            return None
        with self._reload_lock:
            if self._sensors is None or sensor_id not in self._sensors:
                self._sensors = dict(self._sensor_loader())
            return self._sensors.get(sensor_id)

    def _sensor_evaluation(self, request: InboundRequest) -> Reply:
        """Run one sensor evaluation and report it (auth as ``/dispatch``); 500 asks for redelivery when
        the control plane could not be told, 200 otherwise (an ERROR is a reported outcome)."""
        if not self._authorized(request):
            return _error(401, "UNAUTHORIZED", "missing or wrong dispatch secret")
        body = _json_body(request)
        if not isinstance(body, dict):
            return _error(400, "BAD_REQUEST", "the evaluation body must be a JSON object")
        try:
            env = SensorEnvelope.from_json(body)
        except EnvelopeError as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        if self._api_url is not None and env.callback_base_url != self._api_url:
            return _error(400, "BAD_REQUEST", f"callbackBaseUrl is not this worker's API {self._api_url!r}")
        claim = self._claims.claim(f"sensor:{env.evaluation_id}")
        if claim != "claimed":
            if claim == "done":
                return _json(200, {"status": "already_reported", "evaluationId": env.evaluation_id})
            return _error(
                503, "UNAVAILABLE", f"evaluation {env.evaluation_id} is busy", **{"Retry-After": "1"}
            )
        done = False
        try:
            result = evaluate_sensor(self._sensor(env.sensor_id), env)
            status = report_sensor(self._transport, env, result)
            done = status < 500
        except TransportError as exc:
            return _error(500, "INTERNAL", f"the result could not be reported: {exc}")
        finally:
            self._claims.release(f"sensor:{env.evaluation_id}", done=done)
        if not done:
            return _error(500, "INTERNAL", f"the control plane answered {status} to the result")
        return _json(
            200, {"status": result["status"], "evaluationId": env.evaluation_id, "callbackStatus": status}
        )

    def _dispatch(self, request: InboundRequest) -> Reply:
        if not self._authorized(request):
            return _error(401, "UNAUTHORIZED", "missing or wrong dispatch secret")
        body = _json_body(request)
        if not isinstance(body, dict):
            return _error(400, "BAD_REQUEST", "the dispatch body must be a JSON object")
        try:
            env = DispatchEnvelope.from_json(body)
        except InvalidMessage as exc:
            return _error(400, "BAD_REQUEST", exc.message)
        scope = self._scope_error(env)
        if scope is not None:
            return _error(400, "BAD_REQUEST", scope)
        claim = self._claims.claim(env.dispatch_id)
        if claim == "done":
            return _json(200, {"status": "already_completed", "dispatchId": env.dispatch_id})
        if claim != "claimed":
            why = "is already running here" if claim == "busy" else "cannot start: worker is at capacity"
            return _error(503, "UNAVAILABLE", f"dispatch {env.dispatch_id} {why}", **{"Retry-After": "1"})
        done = False
        try:
            fn, refusal = self._asset_for(env)
            result = run_attempt(env, fn, self._transport, self.config, refusal=refusal)
            done = True
        except CallbackUnavailable as exc:
            return _error(500, "INTERNAL", str(exc))
        except Exception:
            logger.exception("dispatch %s failed", env.dispatch_id)
            return _error(500, "INTERNAL", "internal error")
        finally:
            self._claims.release(env.dispatch_id, done=done)
        answer: dict[str, Any] = {"status": result.status, "dispatchId": env.dispatch_id}
        if result.outcome is not None:
            answer["outcome"] = result.outcome
        answer.update({k: v for k, v in result.detail.items() if k in ("error", "state", "cancelReason")})
        return _json(200, answer)
