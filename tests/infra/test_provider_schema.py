"""infra/ against the google / google-beta provider schema (6.x, read offline from the pinned cdktf
bindings by scripts/provider_schema.py): what `terraform validate` would say, without a provider."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra import _schema, _tf


def _google_blocks(root: Path) -> int:
    pattern = re.compile(r'^(resource|data) "google_', re.M)
    return sum(len(pattern.findall(p.read_text())) for p in root.rglob("*.tf"))


def test_every_google_resource_and_data_source_matches_the_schema() -> None:
    problems, checked = _schema.check_tree()
    assert problems == []
    assert checked == _google_blocks(_tf.INFRA) > 0


@pytest.fixture
def planted(planted_infra):
    """Plant one change in a copy of infra/ and check the copy against the schema."""

    def plant(relative: str, old: str, new: str) -> list[str]:
        path = planted_infra(relative, old, new)
        return _schema.check_tree(path.parents[len(Path(relative).parts) - 1])[0]

    return plant


def test_a_misspelt_argument_fails_the_check(planted) -> None:
    problems = planted("modules/servo-core/tasks.tf", "max_attempts       =", "max_attempt        =")
    assert any(
        "google_cloud_tasks_queue.queue.retry_config: unknown argument 'max_attempt'" in p for p in problems
    )


def test_a_missing_required_argument_fails_the_check(planted) -> None:
    problems = planted("modules/worker-cloud-run/main.tf", "  image = var.image\n", "")
    assert any("required argument 'image' is missing" in p for p in problems), problems


def test_a_block_written_as_an_attribute_fails_the_check(planted) -> None:
    problems = planted("modules/servo-core/tasks.tf", "  rate_limits {", "  rate_limits = {")
    assert any("'rate_limits' is a block" in p for p in problems), problems


def test_a_misspelt_argument_inside_a_dynamic_block_fails_the_check(planted) -> None:
    problems = planted(
        "modules/servo-function/main.tf", "attribute = event_filters.key", "atribute = event_filters.key"
    )
    assert any("event_trigger.event_filters: unknown argument 'atribute'" in p for p in problems), problems


def test_a_beta_only_resource_without_the_beta_provider_fails_the_check(planted) -> None:
    problems = planted(
        "modules/servo-core/gateway.tf",
        'resource "google_api_gateway_api" "api" {\n  provider     = google-beta\n',
        'resource "google_api_gateway_api" "api" {\n',
    )
    assert any("google_api_gateway_api.api: no such resource in provider google" in p for p in problems), (
        problems
    )


def test_the_schema_is_a_release_infra_accepts() -> None:
    major, minor, _ = (int(x) for x in _schema.provider_schema.PROVIDER_VERSION.split("."))
    for folder in _tf.tf_folders():
        for block in (b for p in folder.glob("*.tf") for b in _tf.load(p).get("terraform", [])):
            for name, spec in block.get("required_providers", [{}])[0].items():
                if name in ("google", "google-beta"):
                    want = re.fullmatch(r"~> (\d+)\.(\d+)", spec["version"])
                    assert want, spec
                    assert major == int(want.group(1)) and minor >= int(want.group(2)), (folder, spec)


def test_a_misspelt_argument_of_a_push_subscription_fails_the_check(planted) -> None:
    problems = planted("modules/servo-core/sensors.tf", "max_delivery_attempts = 10", "max_deliveries = 10")
    assert any(
        "google_pubsub_subscription.sensor_push.dead_letter_policy: unknown argument 'max_deliveries'" in p
        for p in problems
    ), problems
