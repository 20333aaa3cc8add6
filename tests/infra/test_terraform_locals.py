"""servo-core's locals and variable validations, evaluated by the real Terraform (every local that
needs no provider; the two values only a provider knows, the project number and the bucket's object
prefix, are given), and what the deployment derives from them checked against the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from servo.services.effects import _audience

from tests.infra import _refs, _tf, _tfrun
from tests.infra._iam import CREATE, OVERWRITE, may_write
from tests.infra.conftest import CORE, GIVEN, PROJECT_NUMBER
from tests.infra.conftest import core_variables as _variables


def test_every_provider_free_local_evaluates(core_locals: dict[str, Any]) -> None:
    module = _refs.read(CORE)
    assert set(core_locals) == set(_refs.evaluable_locals(module, GIVEN))
    # What is left needs a resource's attribute (an email, a queue name...), i.e. a provider, or
    # another such local.
    left = set(module.locals) - set(core_locals) - set(GIVEN)
    for name in left:
        refs = [(r["head"], r["name"]) for r in _refs.refs(module.locals[name].split("=", 1)[1])]
        assert any(h not in ("var", "local") or (h == "local" and n in left) for h, n in refs), name
    assert core_locals["missing"] == []


def test_timers_audience_is_the_run_app_url_the_code_derives(core_locals: dict[str, Any]) -> None:
    url = core_locals["timers_url"]
    assert url == f"https://servo-timers-{PROJECT_NUMBER}.us-central1.run.app"
    assert core_locals["timers_name"] == "servo-timers"
    # SERVO_TIMERS_URL as servo-core's common_env builds it, and the audience the code puts in the token.
    env = _tf.blocks(CORE, "locals")["common_env"]
    assert env["SERVO_TIMERS_URL"] == "${local.timers_url}/v1/timers/fire"
    assert _audience(f"{url}/v1/timers/fire") == url
    # Cloud Scheduler signs for the same audience, and the function is the service that URL names.
    sweep = _tf.resources(CORE)[("google_cloud_scheduler_job", "sweep")]["http_target"][0]
    assert sweep["oidc_token"][0]["audience"] == "${local.timers_url}"
    assert sweep["uri"] == "${local.timers_url}/v1/timers/sweep"
    assert _tf.blocks(CORE, "locals")["dispatcher_functions"]["timers"]["name"] == "${local.timers_name}"
    assert _tf.blocks(CORE, "module")["dispatcher"]["name"] == "${each.value.name}"


def test_worker_queues_hand_the_worker_no_more_than_it_can_run(manifest: Path) -> None:
    sized = _refs.evaluate_locals(
        CORE,
        _variables(manifest, worker_max_instances=7, worker_concurrency=3, extra_worker_queues=["gpu"]),
        GIVEN,
    )
    queues = sized["queues"]
    assert {k: q["name"] for k, q in queues.items()} == {
        "dispatch": "servo-dispatch",
        "gpu": "gpu",
        "sensors": "servo-sensors",
        "timers": "servo-timers",
    }
    assert queues["dispatch"]["concurrent"] == queues["gpu"]["concurrent"] == 21
    queue = _tf.resources(CORE)[("google_cloud_tasks_queue", "queue")]
    assert queue["for_each"] == "${local.queues}"
    assert queue["rate_limits"][0]["max_concurrent_dispatches"] == "${each.value.concurrent}"
    example = _tf.blocks(_tf.INFRA / "environments" / "example", "module")
    assert example["servo"]["worker_max_instances"] == example["worker"]["max_instances"]
    assert example["servo"]["worker_concurrency"] == example["worker"]["concurrency"]


def test_retry_shape_matches_design(core_locals: dict[str, Any]) -> None:
    # design §6: 5 s x 2^(attempt-1), capped at 300 s, on every queue but the sensors' (automation §9,
    # test_terraform_sensors.py).
    retry = core_locals["queue_retry"]
    assert (retry["min_backoff"], retry["max_backoff"]) == ("5s", "300s")
    assert 5 * 2 ** retry["max_doublings"] >= 300
    assert {k for k, q in core_locals["queues"].items() if q["retry"] != retry} == {"sensors"}
    config = _tf.resources(CORE)[("google_cloud_tasks_queue", "queue")]["retry_config"][0]
    assert config["min_backoff"] == "${each.value.retry.min_backoff}"
    assert config["max_doublings"] == "${each.value.retry.max_doublings}"
    # Bounded delivery for dispatches (the sweep re-drives), unbounded for a day for timers.
    assert core_locals["queues"]["dispatch"]["attempts"] == 10
    assert (
        core_locals["queues"]["timers"]["attempts"],
        core_locals["queues"]["timers"]["retry_seconds"],
    ) == (-1, 86400)


def test_timers_have_their_own_queue() -> None:
    env = _tf.blocks(CORE, "locals")["common_env"]
    assert env["SERVO_TIMERS_QUEUE"] == '${google_cloud_tasks_queue.queue["timers"].name}'
    assert env["SERVO_TASKS_QUEUE"] == '${google_cloud_tasks_queue.queue["dispatch"].name}'


def test_an_extra_queue_cannot_take_a_servo_queue_key(manifest: Path) -> None:
    with pytest.raises(_tfrun.TerraformError, match="dispatch, sensors and timers"):
        _refs.evaluate_locals(CORE, _variables(manifest, extra_worker_queues=["timers"]), GIVEN)


@pytest.mark.parametrize("days", [0, 7, 90])
def test_soft_delete_accepts_what_cloud_storage_accepts(manifest: Path, days: int) -> None:
    _refs.evaluate_locals(CORE, _variables(manifest, soft_delete_retention_days=days), GIVEN)


@pytest.mark.parametrize("days", [3, 91])
def test_soft_delete_refuses_what_cloud_storage_refuses(manifest: Path, days: int) -> None:
    with pytest.raises(_tfrun.TerraformError, match="soft_delete_retention_days"):
        _refs.evaluate_locals(CORE, _variables(manifest, soft_delete_retention_days=days), GIVEN)


def test_a_name_prefix_too_long_for_service_account_ids_is_refused(manifest: Path) -> None:
    with pytest.raises(_tfrun.TerraformError, match="name_prefix"):
        _refs.evaluate_locals(CORE, _variables(manifest, name_prefix="servo-production-eu"), GIVEN)


def test_a_region_without_api_gateway_needs_a_gateway_region(manifest: Path) -> None:
    alone = _refs.evaluate_locals(CORE, _variables(manifest, region="europe-north1"), GIVEN)
    assert alone["gateway_region_supported"] is False
    paired = _refs.evaluate_locals(
        CORE, _variables(manifest, region="europe-north1", gateway_region="europe-west1"), GIVEN
    )
    assert (paired["gateway_region"], paired["gateway_region_supported"]) == ("europe-west1", True)
    gateway = _tf.resources(CORE)[("google_api_gateway_gateway", "api")]
    assert gateway["region"] == "${local.gateway_region}"
    assert gateway["lifecycle"][0]["precondition"][0]["condition"] == "${local.gateway_region_supported}"


# The writer table's IAM conditions, evaluated on object names (tests/infra/_iam.py).


def test_deploy_overwrites_only_the_manifest_index(core_locals: dict[str, Any]) -> None:
    assert may_write(core_locals, "deploy", "t/w/manifests/_index.json", OVERWRITE)
    assert not may_write(core_locals, "deploy", "t/w/manifests/m-1.json", OVERWRITE)
    assert may_write(core_locals, "deploy", "t/w/manifests/m-1.json", CREATE)
    assert may_write(core_locals, "deploy", "t/w/manifests/idempotency/k.json", CREATE)


def test_no_function_but_the_compactor_reaches_published_state(core_locals: dict[str, Any]) -> None:
    state_names = [
        "t/w/state/orchestration/manifests/00000000000000000001.json",
        "t/w/state/orchestration/manifests/_index.json",
        "t/w/state/orchestration/ledger/x.json",
        "t/w/state/orchestration/head.json",
    ]
    for fn in ("deploy", "trigger", "cancel", "callback", "timers", "runs"):
        for name in state_names:
            for role in (OVERWRITE, CREATE):
                assert not may_write(core_locals, fn, name, role), (fn, name, role)
    assert may_write(core_locals, "compactor", state_names[0], OVERWRITE)


def test_append_only_areas_are_create_only(core_locals: dict[str, Any]) -> None:
    assert may_write(core_locals, "trigger", "t/w/ledger/orchestration/01J.json", CREATE)
    assert not may_write(core_locals, "trigger", "t/w/ledger/orchestration/01J.json", OVERWRITE)
    assert may_write(core_locals, "callback", "t/w/logs/r/t/attempt-1.log", CREATE)
    assert not may_write(core_locals, "cancel", "t/w/run_keys/k.json", CREATE)
