"""Human output: rich tables of runs and tasks, with times shown local and durations short."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

STATE_STYLES = {
    "SUCCEEDED": "green",
    "FAILED": "bold red",
    "TIMED_OUT": "bold red",
    "RUNNING": "cyan",
    "CANCELLING": "magenta",
    "CANCELLED": "magenta",
    "SKIPPED": "yellow",
    "QUEUED": "blue",
    "PENDING": "dim",
}


def plain_table(*columns: str) -> Table:
    """A borderless table with bold headers whose cells wrap rather than cut (the list commands')."""
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def local_time(ts: str | None, now: datetime | None = None) -> str:
    """``HH:MM:SS`` for today, ``YYYY-MM-DD HH:MM`` otherwise, in the local zone."""
    when = _parse(ts)
    if when is None:
        return "-"
    local = when.astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    return local.strftime("%H:%M:%S") if local.date() == today else local.strftime("%Y-%m-%d %H:%M")


def duration(start: str | None, end: str | None, now: datetime | None = None) -> str:
    began = _parse(start)
    if began is None:
        return "-"
    finished = _parse(end) or now or datetime.now(UTC)
    seconds = max(0.0, (finished - began).total_seconds())
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{int(seconds)}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _reason(task: Mapping[str, Any]) -> Text:
    skip = task.get("skipAttribution")
    if isinstance(skip, Mapping):
        return Text(
            f"upstream {skip.get('upstreamTaskKey')} {skip.get('upstreamResolution')}", style="yellow"
        )
    message = task.get("errorMessage")
    if message:
        first = str(message).strip().splitlines()[0] if str(message).strip() else ""
        category = task.get("errorCategory")
        label = f"[{category}] {first}" if category else first
        return Text(label, style="red")
    if task.get("state") == "RUNNING" and (
        task.get("progressMessage") or task.get("progressPct") is not None
    ):
        pct = task.get("progressPct")
        return Text(
            " ".join(
                p for p in (f"{pct}%" if pct is not None else "", task.get("progressMessage") or "") if p
            )
        )
    retry = task.get("retryAttribution")
    if isinstance(retry, Mapping) and task.get("state") not in ("FAILED",):
        return Text(f"retry {retry.get('retries')} after failure", style="dim")
    return Text("")


def tasks_table(run: Mapping[str, Any]) -> Table:
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("TASK", "STATE", "ATTEMPT", "STARTED", "DURATION"):
        table.add_column(column, no_wrap=True)
    table.add_column("DETAIL", overflow="fold")
    for task in run.get("tasks", []):
        attempt = task.get("attempt", 0)
        max_attempts = task.get("maxAttempts")
        table.add_row(
            str(task.get("taskKey")),
            state_text(str(task.get("state"))),
            f"{attempt}/{max_attempts}" if max_attempts else str(attempt),
            local_time(task.get("startedAt")),
            duration(task.get("startedAt"), task.get("completedAt")) if task.get("startedAt") else "-",
            _reason(task),
        )
    return table


def source_text(trigger: Any) -> str:
    """Where a run came from, in a word: ``schedule:NAME:EPOCH``, ``sensor:NAME:v3:1`` (the evaluation),
    ``rerun of PARENT``, ``manual``."""
    if not isinstance(trigger, Mapping):
        return str(trigger or "-")
    if trigger.get("type") == "cron" and trigger.get("tickId"):
        return f"schedule:{trigger['tickId']}"  # a tick id is NAME:EPOCH
    if trigger.get("type") == "sensor" and trigger.get("evaluationId"):
        return f"sensor:{trigger['evaluationId']}"  # an evaluation id starts with the sensor's name
    if trigger.get("type") == "rerun" and trigger.get("parentRunId"):
        return f"rerun of {trigger['parentRunId']}"
    return str(trigger.get("type") or "-")


def run_summary(run: Mapping[str, Any]) -> Text:
    text = Text.assemble(("Run ", "bold"), (str(run.get("runId")), "bold"), "  ")
    text.append_text(state_text(str(run.get("state"))))
    counts = run.get("taskCounts") or {}
    if counts:
        done = counts.get("succeeded", 0)
        text.append(f"  {done}/{counts.get('total', 0)} tasks succeeded")
        for name in ("failed", "skipped", "cancelled"):
            if counts.get(name):
                text.append(f", {counts[name]} {name}")
    partition = run.get("partition")
    if isinstance(partition, Mapping):
        text.append(f"  partition {values_text(partition)}")
    if run.get("trigger") and not run.get("parentRunId"):  # a rerun's lineage line says it
        text.append(f"  by {source_text(run.get('trigger'))}")
    text.append(f"  created {local_time(run.get('createdAt'))}", style="dim")
    if run.get("completedAt"):
        text.append(f", took {duration(run.get('createdAt'), run.get('completedAt'))}", style="dim")
    labels = run.get("labels") or {}
    if labels:
        text.append("  " + " ".join(f"{k}={v}" for k, v in sorted(labels.items())), style="dim")
    return text


def tracebacks(run: Mapping[str, Any]) -> list[RenderableType]:
    """Each failed task's traceback (user frames first, as the worker wrote it), under a header line."""
    shown: list[RenderableType] = []
    for task in run.get("tasks", []):
        trace = task.get("stackTrace")
        if task.get("state") == "FAILED" and trace:
            shown.append(Text(f"\n{task.get('taskKey')} failed:", style="bold red"))
            shown.append(Text(str(trace).rstrip("\n")))
    return shown


def lineage(run: Mapping[str, Any]) -> list[RenderableType]:
    """``Rerun (from failure) of PARENT, root ROOT`` for a rerun; nothing for any other run."""
    parent = run.get("parentRunId")
    if not parent:
        return []
    kind = {"FROM_FAILURE": "from failure", "SUBSET": "subset"}.get(str(run.get("rerunKind")), "rerun")
    text = Text.assemble(f"Rerun ({kind}) of ", (str(parent), "bold"))
    if run.get("rootRunId") and run.get("rootRunId") != parent:
        text.append(f", root {run.get('rootRunId')}")
    return [text]


def run_detail(run: Mapping[str, Any]) -> RenderableType:
    """The run's summary line, its lineage, its tasks (with live progress) and failed tasks' tracebacks."""
    return Group(run_summary(run), *lineage(run), tasks_table(run), *tracebacks(run))


def local_datetime(ts: str | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in the local zone: a run list spans days, so the date always shows."""
    when = _parse(ts)
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when is not None else "-"


def partition_text(canonical: str | None) -> str:
    """A partition key as the user wrote it (``region=eu``), never its encoding (``region=s:ZXU``)."""
    from servo.core.partition_keys import partition_values

    return values_text(partition_values(canonical)) if canonical else ""


def values_text(values: Mapping[str, Any] | None) -> str:
    """``{dimension: value}`` (the API's ``partition``) as ``date=2025-03-01,region=eu``."""
    return ",".join(f"{name}={value}" for name, value in (values or {}).items())


def _assets_and_partition(run: Mapping[str, Any] | None) -> tuple[str, str]:
    """The run's first asset in run order (+ how many more) and its partition, from GetRun."""
    if run is None:
        return "?", ""
    tasks = run.get("tasks") or []
    if not tasks:
        return "-", ""
    first = str(tasks[0].get("assetKey") or tasks[0].get("taskKey"))
    assets = f"{first} +{len(tasks) - 1}" if len(tasks) > 1 else first
    partitions = sorted({partition_text(t.get("partitionKey")) for t in tasks} - {""})
    partition = (
        partitions[0] + (f" +{len(partitions) - 1}" if len(partitions) > 1 else "") if partitions else ""
    )
    return assets, partition


def runs_table(
    runs: Sequence[Mapping[str, Any]], details: Mapping[str, Mapping[str, Any] | None] | None = None
) -> Table:
    """The run list; ``details`` (GetRun by run id) adds what a list row does not carry: assets, partition."""
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    columns = (
        "RUN",
        "STATE",
        "ASSETS",
        "PARTITION",
        "CREATED",
        "TRIGGER",
        "DURATION",
        "TASKS",
        "FAILED",
        "RUN KEY",
    )
    for column in columns:
        table.add_column(column, no_wrap=True)
    for run in runs:
        assets, partition = _assets_and_partition((details or {}).get(str(run.get("runId"))))
        table.add_row(
            str(run.get("runId")),
            state_text(str(run.get("state"))),
            assets,
            partition,
            local_datetime(run.get("createdAt")),
            source_text(run.get("trigger")),
            duration(run.get("createdAt"), run.get("completedAt")) if run.get("completedAt") else "-",
            f"{run.get('tasksSucceeded', 0)}/{run.get('taskCount', 0)}",
            str(run.get("tasksFailed", 0) or ""),
            str(run.get("runKey") or ""),
        )
    return table
