"""What a first apply on an empty project and a safe long-lived deployment need (issue 16), read from
the Terraform: each of these failed or was missing before; what only GCP could prove is written in
infra/README.md as a known step."""

from __future__ import annotations

import re
from typing import Any

from tests.infra import _refs, _tf
from tests.infra.conftest import CORE, GIVEN, ROOT
from tests.infra.conftest import core_variables as _variables

FUNCTION = _tf.INFRA / "modules" / "servo-function"
WORKER = _tf.INFRA / "modules" / "worker-cloud-run"
EXAMPLE = _tf.INFRA / "environments" / "example"


def _function() -> dict[str, Any]:
    return _tf.resources(FUNCTION)[("google_cloudfunctions2_function", "this")]


def test_monitoring_counts_only_the_functions_own_logs(manifest) -> None:
    evaluated = _refs.evaluate_locals(CORE, _variables(manifest), GIVEN)
    flt = evaluated["servo_services_filter"]
    for name in evaluated["function_service_names"]:
        assert f'"{name}"' in flt
    assert "servo-worker" not in flt and "=~" not in flt
    assert 'logName=("projects/p/logs/run.googleapis.com%2Fstdout" OR ' in flt
    assert "requests" not in flt
    latency = _tf.resources(CORE)[("google_logging_metric", "request_latency")]
    assert latency["label_extractors"]["status"] == "EXTRACT(httpRequest.status)"


def test_alerts_cannot_be_silent() -> None:
    policy = _tf.resources(CORE)[("google_monitoring_alert_policy", "alert")]
    assert (
        policy["lifecycle"][0]["precondition"][0]["condition"] == "${length(local.notification_channels) > 0}"
    )
    assert policy["depends_on"] == ["${time_sleep.log_metrics}"]
    example = _tf.blocks(EXAMPLE, "module")["servo"]
    assert example["alert_emails"] == "${var.alert_emails}"


def test_log_execution_id_is_declared_so_plans_stay_empty() -> None:
    env = _function()["service_config"][0]["environment_variables"]
    assert (
        env == '${merge(var.environment, {"LOG_EXECUTION_ID" = "true"})}'
        or 'LOG_EXECUTION_ID = "true"' in env
    )


def test_functions_wait_for_secret_versions_and_build_rights() -> None:
    modules = _tf.blocks(CORE, "module")
    for name in ("api_function", "dispatcher"):
        assert "${terraform_data.functions_ready}" in modules[name]["depends_on"], name
    ready = _tf.resources(CORE)[("terraform_data", "functions_ready")]["depends_on"]
    assert {
        "${google_secret_manager_secret_version.task_token}",
        "${google_secret_manager_secret_version.dispatch}",
        "${terraform_data.build_ready}",
    } <= set(ready)
    assert "${time_sleep.eventarc_iam}" in modules["dispatcher"]["depends_on"]
    dispatch_output = _tf.blocks(CORE, "output")["dispatch_secret_id"]
    assert dispatch_output["depends_on"] == ["${google_secret_manager_secret_version.dispatch}"]


def test_functions_build_as_their_own_account_into_a_cleaned_repository() -> None:
    build = _function()["build_config"][0]
    assert build["service_account"] == "${var.build_service_account}"
    assert build["docker_repository"] == "${var.docker_repository}"
    res = _tf.resources(CORE)
    repo = res[("google_artifact_registry_repository", "functions")]
    assert {p["action"] for p in repo["cleanup_policies"]} == {"KEEP", "DELETE"}
    assert repo["cleanup_policy_dry_run"] is False


def test_secret_values_never_enter_state() -> None:
    res = _tf.resources(CORE)
    for name in ("task_token", "dispatch"):
        version = res[("google_secret_manager_secret_version", name)]
        assert "secret_data" not in version and version["secret_data_wo"].startswith("${ephemeral.")
        assert version["deletion_policy"] == "ABANDON"
    assert not any(rtype == "random_password" for rtype, _ in res)


def test_internal_callers_only_reach_timers_compactor_and_worker() -> None:
    modules = _tf.blocks(CORE, "module")
    dispatchers = _tf.blocks(CORE, "locals")["dispatcher_functions"]
    assert modules["dispatcher"]["ingress"] == "${each.value.ingress}"
    assert {fn: d["ingress"] for fn, d in dispatchers.items()} == {
        "timers": "ALLOW_INTERNAL_ONLY",
        "compactor": "ALLOW_INTERNAL_ONLY",
        # Behind the gateway and pushed to by Pub/Sub (test_terraform_sensors.py): IAM is its gate.
        "automation": "ALLOW_ALL",
    }
    assert "ingress" not in modules["api_function"]
    service = _tf.resources(WORKER)[("google_cloud_run_v2_service", "worker")]
    assert service["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"


def test_the_data_bucket_cannot_be_destroyed_by_a_plan() -> None:
    bucket = _tf.resources(CORE)[("google_storage_bucket", "data")]
    assert bucket["lifecycle"][0]["prevent_destroy"] is True


def test_apis_are_enabled_and_waited_for(manifest) -> None:
    evaluated = _refs.evaluate_locals(CORE, _variables(manifest), GIVEN)
    used = {
        "cloudfunctions.googleapis.com", "run.googleapis.com", "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com", "eventarc.googleapis.com", "pubsub.googleapis.com",
        "cloudtasks.googleapis.com", "cloudscheduler.googleapis.com", "secretmanager.googleapis.com",
        "apigateway.googleapis.com", "servicecontrol.googleapis.com", "servicemanagement.googleapis.com",
        "iamcredentials.googleapis.com", "monitoring.googleapis.com", "logging.googleapis.com",
    }  # fmt: skip
    assert used <= set(evaluated["apis"])
    res = _tf.resources(CORE)
    assert res[("google_project_service", "api")]["disable_on_destroy"] is False
    assert res[("time_sleep", "apis")]["depends_on"] == ["${google_project_service.api}"]


def test_budget_is_optional_and_notifies_the_alert_channels() -> None:
    budget = _tf.resources(CORE)[("google_billing_budget", "servo")]
    assert budget["count"] == "${var.billing_account == null ? 0 : 1}"
    rule = budget["all_updates_rule"][0]
    assert rule["monitoring_notification_channels"] == "${local.notification_channels}"


def test_example_outputs_what_an_operator_needs() -> None:
    outputs = _tf.blocks(EXAMPLE, "output")
    assert {"api_url", "function_uris", "tasks_queue", "timers_queue", "worker_service_account"} <= set(
        outputs
    )


def test_terraform_state_and_plans_are_never_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert {"*.tfstate", "*.tfstate.*", "*.tfplan", ".terraform/", "terraform.tfvars"} <= set(ignored)


def test_one_tenant_per_deployment_is_enforced_and_rotation_keys_are_mounted() -> None:
    env = _tf.blocks(CORE, "locals")["common_env"]
    assert env["SERVO_SINGLE_TENANT"] == "1"
    assert env["SERVO_TENANT"] == "${var.default_tenant}"
    previous = _tf.blocks(CORE, "locals")["previous_token_key"]
    assert "SERVO_TOKEN_SECRET_PREVIOUS" in previous and "var.task_token_previous_version" in previous


def test_the_example_tfvars_names_only_declared_variables_and_every_required_one() -> None:
    text = (EXAMPLE / "terraform.tfvars.example").read_text()
    # Optional settings are shown commented out; they must be real variables too.
    named = set(re.findall(r"^#?\s*(\w+)\s+=", text, re.M))
    declared = _tf.blocks(EXAMPLE, "variable")
    assert named <= set(declared)
    required = {name for name, body in declared.items() if "default" not in body}
    assert required <= set(_tf.load(EXAMPLE / "terraform.tfvars.example"))
