"""A small HTTP client of the control-plane API; every failure becomes one CliError line."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import requests

from servo.cli._config import Config
from servo.cli._errors import CliError

TERMINAL_RUN_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})
_TIMEOUT_S = 30.0


class ApiClient:
    """The workspace-scoped API of one resolved config."""

    def __init__(self, config: Config, session: requests.Session | None = None) -> None:
        self.config = config
        self._session = session or requests.Session()
        self._session.headers["X-Servo-Tenant"] = config.tenant
        self._session.headers["User-Agent"] = "servo-cli"
        if config.token:
            self._session.headers["Authorization"] = f"Bearer {config.token}"
        self._base = f"{config.api_url}/v1/workspaces/{config.workspace}"

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self._base}{path}"
        try:
            response = self._session.request(method, url, timeout=_TIMEOUT_S, **kwargs)
        except requests.ConnectionError:
            raise CliError(
                f"cannot reach the Servo API at {self.config.api_url}: is `servo dev` running?",
                hint=f"API URL from {self.config.sources.get('api_url', 'default')}",
            ) from None
        except requests.Timeout:
            raise CliError(
                f"the Servo API at {self.config.api_url} did not answer in {_TIMEOUT_S:.0f} s"
            ) from None
        if response.status_code >= 400:
            raise _api_error(response, self.config)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise CliError(f"the Servo API answered {method} {path} with non-JSON content") from None
        if not isinstance(body, dict):
            raise CliError(f"the Servo API answered {method} {path} with unexpected JSON")
        return body

    def deploy(self, manifest: bytes) -> dict[str, Any]:
        key = hashlib.sha256(manifest).hexdigest()
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        return self._json("POST", "/manifests", data=manifest, headers=headers)

    def current_manifest(self) -> dict[str, Any] | None:
        try:
            return self._json("GET", "/manifests/current")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def trigger(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/runs", json=dict(body))

    def rerun(self, run_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"/runs/{run_id}/rerun", json=dict(body))

    def list_runs(self, limit: int, state: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        return self._json("GET", "/runs", params=params)

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._json("GET", f"/runs/{run_id}")

    def cancel(self, run_id: str, reason: str | None) -> dict[str, Any]:
        body = {"reason": reason} if reason else {}
        return self._json("POST", f"/runs/{run_id}/cancel", json=body)

    def log_pages(self, run_id: str, task_key: str | None) -> Iterator[str]:
        """Every page of the run's captured logs, following the next-page cursor."""
        params: dict[str, Any] = {"limit": 50}
        if task_key:
            params["taskKey"] = task_key
        while True:
            response = self._request("GET", f"/runs/{run_id}/logs", params=params)
            yield response.content.decode("utf-8", errors="replace")
            cursor = response.headers.get("X-Servo-Next-Cursor")
            if not cursor:
                return
            params["cursor"] = cursor

    def list_schedules(self) -> dict[str, Any]:
        return self._json("GET", "/schedules")

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self._json("GET", f"/schedules/{schedule_id}")

    def set_schedule_enabled(self, schedule_id: str, enabled: bool) -> dict[str, Any]:
        return self._json("POST", f"/schedules/{schedule_id}/{'enable' if enabled else 'disable'}", json={})

    def schedule_ticks(self, schedule_id: str, limit: int, status: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self._json("GET", f"/schedules/{schedule_id}/ticks", params=params)

    def list_sensors(self) -> dict[str, Any]:
        return self._json("GET", "/sensors")

    def get_sensor(self, sensor_id: str) -> dict[str, Any]:
        return self._json("GET", f"/sensors/{sensor_id}")

    def set_sensor_enabled(self, sensor_id: str, enabled: bool) -> dict[str, Any]:
        return self._json("POST", f"/sensors/{sensor_id}/{'enable' if enabled else 'disable'}", json={})

    def sensor_evaluations(self, sensor_id: str, limit: int, **filters: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, **{k: v for k, v in filters.items() if v}}
        return self._json("GET", f"/sensors/{sensor_id}/evaluations", params=params)

    def sensor_evaluation(self, sensor_id: str, evaluation_id: str) -> dict[str, Any]:
        return self._json("GET", f"/sensors/{sensor_id}/evaluations/{evaluation_id}")

    def evaluate_sensor(self, sensor_id: str, body: Mapping[str, Any], key: str) -> dict[str, Any]:
        return self._json(
            "POST", f"/sensors/{sensor_id}/evaluate", json=dict(body), headers={"Idempotency-Key": key}
        )

    def create_backfill(self, body: Mapping[str, Any], key: str) -> dict[str, Any]:
        return self._json("POST", "/backfills", json=dict(body), headers={"Idempotency-Key": key})

    def retry_failed_backfill(self, backfill_id: str, body: Mapping[str, Any], key: str) -> dict[str, Any]:
        headers = {"Idempotency-Key": key}
        return self._json("POST", f"/backfills/{backfill_id}/retry-failed", json=dict(body), headers=headers)

    def move_backfill(self, backfill_id: str, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"/backfills/{backfill_id}/{action}", json=dict(body))

    def list_backfills(self, limit: int, state: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        return self._json("GET", "/backfills", params=params)

    def get_backfill(self, backfill_id: str) -> dict[str, Any]:
        return self._json("GET", f"/backfills/{backfill_id}")

    def list_assets(self, *, stale: bool, prefix: str | None, as_of: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": 200}
        if stale:
            params["stale"] = "true"
        if prefix:
            params["prefix"] = prefix
        if as_of:
            params["asOf"] = as_of
        assets: list[Any] = []
        while True:
            page = self._json("GET", "/assets", params=params)
            assets.extend(page.get("assets", []))
            if not page.get("nextCursor"):
                return {"assets": assets}
            params["cursor"] = page["nextCursor"]

    def get_asset(self, asset_key: str, *, as_of: str | None) -> dict[str, Any]:
        return self._json("GET", f"/assets/{asset_key}", params={"asOf": as_of} if as_of else {})

    def asset_partitions(
        self, asset_key: str, limit: int, *, status: str | None, stale: bool, as_of: str | None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` partitions by key, following the pages."""
        params: dict[str, Any] = {"limit": min(limit, 200)}
        if status:
            params["status"] = status
        if stale:
            params["stale"] = "true"
        if as_of:
            params["asOf"] = as_of
        rows: list[dict[str, Any]] = []
        while len(rows) < limit:
            page = self._json("GET", f"/assets/{asset_key}/partitions", params=params)
            rows.extend(page.get("partitions", []))
            if not page.get("nextCursor"):
                break
            params["cursor"] = page["nextCursor"]
        return rows[:limit]


class ApiError(CliError):
    """The API refused a request; the message is the API's own."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        hint: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code
        self.details: Mapping[str, Any] = details or {}


def _api_error(response: requests.Response, config: Config) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code, message = str(body.get("code", "")), body["message"]
    else:
        code, message = "", f"the Servo API answered HTTP {response.status_code}"
    hint = None
    if response.status_code == 401:
        hint = "set SERVO_TOKEN to the API's bearer token"
    elif response.status_code >= 500 and isinstance(body, dict) and body.get("correlationId"):
        hint = f"correlation id {body['correlationId']}"
    details = body.get("details") if isinstance(body, dict) else None
    return ApiError(response.status_code, code, message, hint, details if isinstance(details, dict) else None)
