"""No reference to an undeclared name: variables, locals, resources, data sources, module outputs,
and module calls that pass exactly what the child declares (what `terraform validate` would check,
offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra import _refs, _tf


@pytest.mark.parametrize("folder", _tf.tf_folders(), ids=lambda p: str(p.relative_to(_tf.INFRA)))
def test_every_reference_is_declared(folder: Path) -> None:
    assert _refs.undeclared(_refs.read(folder)) == []


@pytest.fixture
def planted(planted_infra):
    """Plant one change in a copy of infra/ and look for undeclared names in the changed module."""

    def plant(relative: str, old: str, new: str) -> list[str]:
        return _refs.undeclared(_refs.read(planted_infra(relative, old, new).parent))

    return plant


CORE = "modules/servo-core"


@pytest.mark.parametrize(
    ("relative", "old", "new", "problem"),
    [
        (
            f"{CORE}/tasks.tf",
            "var.task_max_attempts",
            "var.task_max_attempt",
            "var.task_max_attempt is not declared",
        ),
        (
            f"{CORE}/tasks.tf",
            "local.worker_capacity\n",
            "local.worker_capacty\n",
            "local.worker_capacty is not declared",
        ),
        (
            f"{CORE}/monitoring.tf",
            "google_logging_metric.errors.name",
            "google_logging_metric.error.name",
            "resource google_logging_metric.error is not declared",
        ),
        (
            f"{CORE}/iam.tf",
            "data.google_storage_project_service_account.gcs.email_address",
            "data.google_storage_project_service_account.storage.email_address",
            "data.google_storage_project_service_account.storage is not declared",
        ),
        (
            f"{CORE}/gateway.tf",
            "module.openapi.public",
            "module.openapi.public_doc",
            "module.openapi has no output public_doc",
        ),
        (
            f"{CORE}/sensors.tf",
            "dead_letter_topic     = google_pubsub_topic.sensor_dead_letter.id",
            "dead_letter_topic     = google_pubsub_topic.dead_letter.id",
            "resource google_pubsub_topic.dead_letter is not declared",
        ),
        (
            f"{CORE}/iam.tf",
            'to   = google_project_service_identity.agent["cloudtasks"]',
            'to   = google_project_service_identity.agents["cloudtasks"]',
            "resource google_project_service_identity.agents is not declared",
        ),
        (
            "environments/example/main.tf",
            "  log_retention_days      = var.log_retention_days\n",
            "  log_retention_days      = var.log_retention_days\n  log_retention           = 3\n",
            "module.servo passes log_retention, which servo-core does not declare",
        ),
        (
            "environments/example/main.tf",
            "  bucket_name             = var.bucket_name\n",
            "",
            "module.servo does not pass the required bucket_name",
        ),
    ],
    ids=[
        "variable",
        "local",
        "resource",
        "data",
        "module-output",
        "push-sensors-resource",
        "moved-target",
        "module-input",
        "required-input",
    ],
)
def test_a_planted_undeclared_name_is_found(planted, relative: str, old: str, new: str, problem: str) -> None:
    problems = planted(relative, old, new)
    assert any(problem in p for p in problems), problems
