from __future__ import annotations

import dataclasses
import logging
from datetime import date
from typing import Any

import pytest
from servo import AssetContext, DailyPartitions, StaticPartitions, asset
from servo.core.errors import CanonicalJsonError, InvalidInput, InvalidPartitionKey
from servo.sdk import InMemoryReporter, Reporter, definition_of


@asset(namespace="analytics", partitions=[DailyPartitions(), StaticPartitions("region", ["eu", "us"])])
def sales(ctx: AssetContext) -> None: ...


@asset(namespace="raw")
def events(ctx: AssetContext) -> None: ...


def context(**overrides: Any) -> AssetContext:
    settings: dict[str, Any] = {
        "definition": definition_of(sales),
        "run_id": "01JRUN",
        "task_key": "analytics.sales",
        "attempt": 2,
        "partition_key": "date=d:2025-01-15,region=s:ZXU",
        "tenant_id": "acme",
        "workspace_id": "prod",
    }
    settings.update(overrides)
    return AssetContext(**settings)


def test_context_carries_the_attempt_and_a_parsed_partition() -> None:
    ctx = context(upstream={"raw.events": {"rowCount": 3, "metadata": {"source": "s3"}}})
    assert (ctx.run_id, ctx.task_key, ctx.attempt, ctx.tenant_id, ctx.workspace_id) == (
        "01JRUN",
        "analytics.sales",
        2,
        "acme",
        "prod",
    )
    assert str(ctx.asset_key) == "analytics.sales"
    assert ctx.partition_key.canonical == "date=d:2025-01-15,region=s:ZXU"
    assert ctx.partition_key["date"] == date(2025, 1, 15)
    assert ctx.partition_key["region"] == "eu"
    assert ctx.upstream["raw.events"]["rowCount"] == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.run_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.upstream["raw.events"] = {}  # type: ignore[index]


def test_unpartitioned_context_has_a_falsy_partition() -> None:
    ctx = AssetContext(definition=definition_of(events), run_id="r")
    assert not ctx.partition_key and ctx.partition_key.canonical == ""
    assert ctx.task_key == "raw.events" and ctx.attempt == 1


@pytest.mark.parametrize(
    "partition_key",
    [None, "date=d:2025-01-15", "date=d:2025-01-15,region=s:ZnI", "date=s:MjAyNS0wMS0xNQ,region=s:ZXU"],
)
def test_a_partition_that_does_not_fit_the_asset_is_refused(partition_key: str | None) -> None:
    with pytest.raises(InvalidPartitionKey):
        context(partition_key=partition_key)


def test_progress_and_metadata_reach_the_reporter() -> None:
    reporter = InMemoryReporter()
    ctx = context(reporter=reporter)
    ctx.report_progress("halfway", 50)
    ctx.report_progress("still going")
    ctx.add_metadata(row_count=42, source="s3")
    ctx.add_metadata(row_count=43)
    assert reporter.progress_updates == [("halfway", 50), ("still going", None)]
    assert reporter.collected == {"row_count": 43, "source": "s3"}


def test_bad_progress_and_unstorable_metadata_fail_at_the_call() -> None:
    reporter = InMemoryReporter()
    ctx = context(reporter=reporter)
    for pct in (101, -1, True, 5.5):
        with pytest.raises(InvalidInput, match="pct"):
            ctx.report_progress("x", pct)  # type: ignore[arg-type]
    with pytest.raises(CanonicalJsonError, match="float"):
        ctx.add_metadata(ratio=0.5)
    assert reporter.progress_updates == [] and reporter.collected == {}


def test_the_worker_can_plug_in_its_own_reporter_and_cancel_signal() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, Any]] = []

        def progress(self, message: str | None, pct: float | None = None) -> None:
            self.calls.append(("progress", (message, pct)))

        def metadata(self, values: Any) -> None:
            self.calls.append(("metadata", dict(values)))

    recorder = Recorder()
    reporter: Reporter = recorder  # structural: no base class needed
    cancelled = [False]
    ctx = context(reporter=reporter, is_cancelled=lambda: cancelled[0])
    ctx.report_progress("go", 10)
    ctx.add_metadata(n=1)
    assert recorder.calls == [("progress", ("go", 10)), ("metadata", {"n": 1})]
    assert not ctx.is_cancelled()
    cancelled[0] = True
    assert ctx.is_cancelled()


def test_log_records_go_to_the_captured_servo_asset_logger(caplog: pytest.LogCaptureFixture) -> None:
    ctx = context()
    assert isinstance(ctx.log, logging.Logger)
    assert ctx.log.name.startswith("servo.asset.")
    with caplog.at_level(logging.INFO, logger="servo.asset"):
        ctx.log.info("loaded %d rows", 3)
    assert [r.getMessage() for r in caplog.records if r.name == ctx.log.name] == ["loaded 3 rows"]


def test_attempt_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="attempt"):
        context(attempt=0)
