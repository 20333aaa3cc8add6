"""Structured JSON logs on stdout in Cloud Logging's format (design §8).

One entry per request with latency and status; trace from W3C ``traceparent``; labels run_id,
task_key, correlation_id. Context is bound by copying, never by mutating a shared dict.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

_TRACE_KEY = "logging.googleapis.com/trace"
_LABELS_KEY = "logging.googleapis.com/labels"
_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "ERROR": "ERROR", "CRITICAL": "CRITICAL"}


def trace_id_from_traceparent(traceparent: str | None) -> str | None:
    """The 32-hex trace id of a W3C traceparent ``00-<trace>-<span>-<flags>``, or None when malformed."""
    if not traceparent:
        return None
    parts = traceparent.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        int(parts[1], 16)
        int(parts[2], 16)
    except ValueError:
        return None
    return None if parts[1] == "0" * 32 else parts[1]


class JsonFormatter(logging.Formatter):
    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self._project = project

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _LEVELS.get(record.levelname, "DEFAULT"),
            "message": record.getMessage(),
            "logger": record.name,
        }
        fields: Mapping[str, Any] = getattr(record, "servo", {}) or {}
        labels = {k: str(v) for k, v in fields.get("labels", {}).items() if v is not None}
        if labels:
            entry[_LABELS_KEY] = labels
        trace = trace_id_from_traceparent(fields.get("traceparent"))
        if trace:
            entry[_TRACE_KEY] = f"projects/{self._project}/traces/{trace}" if self._project else trace
        for key, value in fields.items():
            if key not in ("labels", "traceparent") and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(project: str | None = None, level: int = logging.INFO) -> None:
    """Route the ``servo`` loggers to stdout as JSON; idempotent."""
    logger = logging.getLogger("servo")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(project))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def log_fields(**fields: Any) -> dict[str, Any]:
    """``extra=`` payload for a structured entry: ``logger.info("msg", extra=log_fields(...))``."""
    return {"servo": fields}
