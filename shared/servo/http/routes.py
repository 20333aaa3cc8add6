"""The public route table: which function serves which path.

``infra/openapi.yaml`` is the source of truth for API Gateway; a test asserts that this table and the
document agree route for route, so the local router and the deployed gateway cannot drift apart.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

FUNCTIONS = ("deploy", "trigger", "runs", "cancel", "callback", "compactor", "timers", "automation")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str  # OpenAPI style: /v1/workspaces/{ws}/runs/{run_id}
    function: str
    operation: str
    internal: bool = False  # not exposed through the gateway (scheduler / Cloud Tasks only)

    @property
    def pattern(self) -> re.Pattern[str]:
        return _pattern(self.template)


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    # Built once per template: every request scans the table, and rebuilding its regexes cost about
    # 0.25 ms a request (each worker callback of every task).
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return re.compile(f"^{regex}$")


_CALLBACK_ACTIONS = ("started", "heartbeat", "completed", "logs")
_SCHEDULE = "/v1/workspaces/{ws}/schedules"
_SCHEDULE_ROUTES = (
    Route("GET", _SCHEDULE, "automation", "listSchedules"),
    Route("GET", f"{_SCHEDULE}/{{schedule_id}}", "automation", "getSchedule"),
    Route("POST", f"{_SCHEDULE}/{{schedule_id}}/enable", "automation", "enableSchedule"),
    Route("POST", f"{_SCHEDULE}/{{schedule_id}}/disable", "automation", "disableSchedule"),
    Route("GET", f"{_SCHEDULE}/{{schedule_id}}/ticks", "automation", "listScheduleTicks"),
    Route("GET", f"{_SCHEDULE}/{{schedule_id}}/ticks/{{tick_id}}", "automation", "getScheduleTick"),
)
_SENSOR = "/v1/workspaces/{ws}/sensors"
_SENSOR_ROUTES = (
    Route("GET", _SENSOR, "automation", "listSensors"),
    Route("GET", f"{_SENSOR}/{{sensor_id}}", "automation", "getSensor"),
    Route("POST", f"{_SENSOR}/{{sensor_id}}/enable", "automation", "enableSensor"),
    Route("POST", f"{_SENSOR}/{{sensor_id}}/disable", "automation", "disableSensor"),
    Route("GET", f"{_SENSOR}/{{sensor_id}}/evaluations", "automation", "listSensorEvaluations"),
    Route(
        "GET", f"{_SENSOR}/{{sensor_id}}/evaluations/{{evaluation_id}}", "automation", "getSensorEvaluation"
    ),
    Route("POST", f"{_SENSOR}/{{sensor_id}}/evaluate", "automation", "evaluateSensor"),
    Route("POST", f"{_SENSOR}/{{sensor_id}}/push", "automation", "pushSensorMessage"),
    Route("POST", "/v1/sensor-evaluations/{evaluation_id}/result", "callback", "reportSensorEvaluation"),
)

_BACKFILL = "/v1/workspaces/{ws}/backfills"
_BACKFILL_ROUTES = (
    Route("POST", _BACKFILL, "automation", "createBackfill"),
    Route("GET", _BACKFILL, "automation", "listBackfills"),
    Route("GET", f"{_BACKFILL}/{{backfill_id}}", "automation", "getBackfill"),
    Route("GET", f"{_BACKFILL}/{{backfill_id}}/chunks", "automation", "listBackfillChunks"),
    Route("POST", f"{_BACKFILL}/{{backfill_id}}/pause", "automation", "pauseBackfill"),
    Route("POST", f"{_BACKFILL}/{{backfill_id}}/resume", "automation", "resumeBackfill"),
    Route("POST", f"{_BACKFILL}/{{backfill_id}}/cancel", "automation", "cancelBackfill"),
    Route("POST", f"{_BACKFILL}/{{backfill_id}}/retry-failed", "automation", "retryFailedBackfill"),
)

_ASSET = "/v1/workspaces/{ws}/assets"
_ASSET_ROUTES = (
    Route("GET", _ASSET, "automation", "listAssets"),
    Route("GET", f"{_ASSET}/{{asset_key}}", "automation", "getAsset"),
    Route("GET", f"{_ASSET}/{{asset_key}}/partitions", "automation", "listAssetPartitions"),
)

ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/workspaces/{ws}/manifests", "deploy", "deployManifest"),
    Route("GET", "/v1/workspaces/{ws}/manifests/current", "deploy", "getCurrentManifest"),
    Route("POST", "/v1/workspaces/{ws}/runs", "trigger", "triggerRun"),
    Route("GET", "/v1/workspaces/{ws}/runs", "runs", "listRuns"),
    Route("GET", "/v1/workspaces/{ws}/runs/{run_id}", "runs", "getRun"),
    Route("GET", "/v1/workspaces/{ws}/runs/{run_id}/logs", "runs", "getRunLogs"),
    Route("POST", "/v1/workspaces/{ws}/runs/{run_id}/cancel", "cancel", "cancelRun"),
    Route("POST", "/v1/workspaces/{ws}/runs/{run_id}/rerun", "trigger", "rerunRun"),
    *(
        Route("POST", f"{prefix}/tasks/{{task_id}}/{action}", "callback", f"task{action.title()}{suffix}")
        for prefix, suffix in (("/v1", ""), ("/api/v1", "Compat"))
        for action in _CALLBACK_ACTIONS
    ),
    Route("POST", "/v1/timers/sweep", "timers", "sweepTimers", internal=True),
    Route("POST", "/v1/timers/fire", "timers", "fireTimer", internal=True),
    *_SCHEDULE_ROUTES,
    *_SENSOR_ROUTES,
    *_BACKFILL_ROUTES,
    *_ASSET_ROUTES,
)


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: dict[str, str]


def allowed_methods(path: str, *, function: str | None = None) -> list[str]:
    """The methods the route table serves at ``path``: the ``Allow`` header of a 405 (RFC 9110)."""
    return sorted(
        {r.method for r in ROUTES if (function is None or r.function == function) and r.pattern.match(path)}
    )


def literal_prefix(template: str) -> str:
    """The start of ``template`` before its first parameter: a path the route takes begins with it."""
    return template.split("{", 1)[0]


# Each route with its literal start and regex, in table order: a path is matched only against the
# routes whose literal start it has (a worker callback tried 13 regexes before reaching its own).
_INDEX = tuple((route, literal_prefix(route.template), route.pattern) for route in ROUTES)


def match(method: str, path: str, *, function: str | None = None) -> Match | Route | None:
    """The route for ``method path``; a Route (without params) when only the method is wrong."""
    wrong_method: Route | None = None
    method = method.upper()
    for route, prefix, pattern in _INDEX:
        if not path.startswith(prefix) or (function is not None and route.function != function):
            continue
        found = pattern.match(path)
        if found is None:
            continue
        if route.method == method:
            return Match(route, found.groupdict())
        wrong_method = route
    return wrong_method
