"""Structure and policy of infra/ read with python-hcl2 (no provider can be downloaded to validate it)."""

from __future__ import annotations

import ast
import re

import pytest

from tests.infra import _tf
from tests.infra.conftest import EXPECTED_FUNCTIONS, ROOT, function_folders

CORE = _tf.INFRA / "modules" / "servo-core"
FUNCTION_MODULE = _tf.INFRA / "modules" / "servo-function"


def _core_function_modules() -> dict[str, dict]:
    """Function name -> the module block (or for_each module) that deploys it."""
    modules = _tf.blocks(CORE, "module")
    locals_ = _tf.blocks(CORE, "locals")
    found: dict[str, dict] = {}
    for name, body in modules.items():
        if body["source"] != "../servo-function":
            continue
        if "for_each" in body:
            listed = re.fullmatch(r"\$\{(?:toset\()?local\.(\w+)\)?\}", body["for_each"])
            assert listed, body["for_each"]
            for fn in locals_[listed.group(1)]:
                found[fn] = body
        else:
            found[name] = body
    return found


@pytest.mark.parametrize("fn", function_folders())
def test_function_folder_has_its_entry_point(fn: str) -> None:
    main = ROOT / "functions" / fn / "main.py"
    assert main.is_file(), f"functions/{fn}/ has no main.py"
    tree = ast.parse(main.read_text())
    assert fn in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, f"{main} lacks def {fn}(...)"


@pytest.mark.parametrize("fn", function_folders())
def test_every_function_folder_has_a_terraform_function(fn: str) -> None:
    modules = _core_function_modules()
    assert fn in modules, f"no Terraform function deploys functions/{fn}"
    body = modules[fn]
    key = "each.value" if body.get("for_each", "").startswith("${toset(") else "each.key"
    assert body["entry_point"] == f"${{local.artifacts[{key}].entry_point}}"
    assert body["service_account_email"] == f"${{google_service_account.function[{key}].email}}"
    assert body["source_object"] == f"${{local.source_objects[{key}]}}"


def test_the_seven_functions_exist() -> None:
    assert tuple(sorted(function_folders())) == tuple(sorted(EXPECTED_FUNCTIONS))


def test_terraform_deploys_exactly_the_seven_functions() -> None:
    assert sorted(_core_function_modules()) == sorted(EXPECTED_FUNCTIONS)


def test_function_resource_runtime_and_own_service_account() -> None:
    res = _tf.resources(FUNCTION_MODULE)[("google_cloudfunctions2_function", "this")]
    build = res["build_config"][0]
    assert build["runtime"] == "python311"
    assert build["entry_point"] == "${var.entry_point}"
    assert res["service_config"][0]["service_account_email"] == "${var.service_account_email}"
    sas = _tf.resources(CORE)[("google_service_account", "function")]
    assert sas["for_each"] == "${toset(local.functions)}"
    assert "${each.value}" in sas["account_id"]


def test_zips_are_content_addressed_and_not_archive_file() -> None:
    objects = _tf.blocks(CORE, "locals")["source_objects"]
    assert '${fn}-${try(local.artifacts[fn].sha256, "missing")}.zip' in objects
    text = "\n".join(p.read_text() for p in _tf.INFRA.rglob("*.tf"))
    assert 'data "archive_file"' not in text
    # Terraform never uploads or owns the zips: a plan that did not upload them would delete them.
    assert "google_storage_bucket_object" not in text


def test_eventarc_trigger_targets_the_bucket_and_the_ledger() -> None:
    trigger = _tf.blocks(CORE, "locals")["dispatcher_functions"]["compactor"]["event_trigger"]
    assert _tf.blocks(CORE, "module")["dispatcher"]["event_trigger"] == "${each.value.event_trigger}"
    assert trigger["event_type"] == "google.cloud.storage.object.v1.finalized"
    assert trigger["filters"] == {"bucket": "${google_storage_bucket.data.name}"}
    assert _tf.blocks(CORE, "locals")["ledger_object_pattern"] == "*/*/ledger/orchestration/*"
    fn = _tf.resources(FUNCTION_MODULE)[("google_cloudfunctions2_function", "this")]
    dynamic = fn["dynamic"][0]["event_trigger"]["content"][0]
    assert dynamic["event_type"] == "${event_trigger.value.event_type}"


def _write_grants() -> dict[str, dict]:
    return _tf.blocks(CORE, "locals")["write_grants"]


# Schedules (issue 18): definition, status and tick events, the sweep's runs, the schedule projection.
SCHEDULE_WRITES = {
    ("deploy", "ledger"),
    ("deploy", "automation"),
    ("automation", "ledger"),
    ("automation", "automation"),
    ("timers", "run_keys"),
    ("timers", "creations"),
    ("timers", "automation"),
}
# Sensors (issue 19): the result callback records results in the ledger only (automation §6.3); the
# compactor's grants for backfills (automation/, run_keys/, creations/) serve its sensor submissions.
SENSOR_WRITES: set[tuple[str, str]] = set()


# Backfills (issue 20): the create's key reservation, and the chunk runs the automation function (at
# create) and the compactor (after a backfill run ended) submit, with the projection they refresh.
BACKFILL_WRITES = {
    ("automation", "requests"),
    ("automation", "run_keys"),
    ("automation", "creations"),
    ("compactor", "automation"),
    ("compactor", "run_keys"),
    ("compactor", "creations"),
}


def test_writer_table_matches_design() -> None:
    writes = {(g["fn"], g["area"]) for g in _write_grants().values()}
    assert writes >= SCHEDULE_WRITES | SENSOR_WRITES | BACKFILL_WRITES
    writes -= SCHEDULE_WRITES | SENSOR_WRITES | BACKFILL_WRITES
    assert writes == {
        ("deploy", "manifests"),
        ("deploy", "_servo/workspaces"),
        ("trigger", "run_keys"),
        ("trigger", "creations"),  # the run's creation record (services/run_creation.py)
        ("trigger", "ledger"),
        ("cancel", "ledger"),
        ("callback", "attempt_claims"),  # one delivery per attempt (services/callbacks.py)
        ("callback", "ledger"),
        ("callback", "logs"),
        ("compactor", "state"),
        ("compactor", "ledger"),
        ("timers", "ledger"),
    }
    assert not any(g["fn"] == "runs" for g in _write_grants().values())


def test_only_the_compactor_can_write_state() -> None:
    state = [g for g in _write_grants().values() if g["area"] == "state"]
    assert [g["fn"] for g in state] == ["compactor"]
    # Append-only areas are create-only: no principal but the compactor/deploy may overwrite or delete.
    for grant in _write_grants().values():
        if grant["area"] not in ("state", "manifests", "automation"):
            assert grant["role"] == "roles/storage.objectCreator", grant


def test_every_write_grant_is_conditioned_on_its_prefix() -> None:
    # What the conditions allow is evaluated on object names in test_terraform_locals.py.
    writer = _tf.resources(CORE)[("google_storage_bucket_iam_member", "writer")]
    assert writer["for_each"] == "${local.write_grants}"
    assert writer["condition"][0]["expression"] == "${local.write_conditions[each.key]}"
    bindings = [
        body
        for (rtype, _), body in _tf.resources(CORE).items()
        if rtype.startswith("google_storage_bucket_iam")
    ]
    for body in bindings:
        if body["role"] != "roles/storage.objectViewer":
            assert "condition" in body, body


def test_bucket_hardening() -> None:
    bucket = _tf.resources(CORE)[("google_storage_bucket", "data")]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"][0]["enabled"] is False
    main_tf = (CORE / "main.tf").read_text()
    assert "Versioning is off on purpose" in main_tf
    rule = bucket["lifecycle_rule"][0]
    assert rule["action"][0]["type"] == "Delete"
    assert rule["condition"][0]["age"] == "${var.log_retention_days}"
    assert rule["condition"][0]["matches_suffix"] == [".log"]


def test_queue_retry_and_rate_limits_and_scheduler() -> None:
    res = _tf.resources(CORE)
    queue = res[("google_cloud_tasks_queue", "queue")]
    assert {"max_attempts", "min_backoff", "max_backoff"} <= queue["retry_config"][0].keys()
    assert {"max_dispatches_per_second", "max_concurrent_dispatches"} <= queue["rate_limits"][0].keys()
    job = res[("google_cloud_scheduler_job", "sweep")]
    assert _tf.blocks(CORE, "variable")["sweep_schedule"]["default"] == "* * * * *"
    target = job["http_target"][0]
    assert target["uri"].endswith("/v1/timers/sweep")
    assert target["oidc_token"][0]["service_account_email"] == "${google_service_account.scheduler.email}"


def test_gateway_config_comes_from_openapi_without_internal_routes() -> None:
    # The rendering and the filter are in modules/openapi-document, which the real Terraform runs in
    # test_terraform_render.py; here: servo-core hands the gateway that module's public document.
    openapi = _tf.blocks(CORE, "module")["openapi"]
    assert openapi["source"] == "../openapi-document"
    assert _tf.blocks(CORE, "locals")["openapi_public"] == "${module.openapi.public}"
    res = _tf.resources(CORE)
    assert ("google_api_gateway_gateway", "api") in res
    config = res[("google_api_gateway_api_config", "api")]
    assert "local.openapi_public" in config["openapi_documents"][0]["document"][0]["contents"]


def test_log_metrics_and_alerts() -> None:
    res = _tf.resources(CORE)
    latency = res[("google_logging_metric", "request_latency")]
    assert latency["value_extractor"] == "EXTRACT(jsonPayload.latency_ms)"
    assert latency["metric_descriptor"][0]["value_type"] == "DISTRIBUTION"
    errors = res[("google_logging_metric", "errors")]
    assert "severity>=ERROR" in errors["filter"]
    for metric in (latency, errors):
        assert metric["label_extractors"]["function"] == "EXTRACT(resource.labels.service_name)"
    policy = res[("google_monitoring_alert_policy", "alert")]
    assert policy["for_each"] == "${local.alerts}"
    assert policy["notification_channels"] == "${local.notification_channels}"
    assert {
        "errors",
        "latency",
        "queue_depth",
        "task_failures",
        "scheduler_failures",
        "compaction_lag",
        "eventarc_backlog",
    } <= set(_tf.blocks(CORE, "locals")["alerts"])


def test_worker_module_invoker_is_the_tasks_service_account() -> None:
    res = _tf.resources(_tf.INFRA / "modules" / "worker-cloud-run")
    assert ("google_service_account", "worker") in res
    invoker = res[("google_cloud_run_v2_service_iam_member", "tasks_invoker")]
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == "serviceAccount:${var.invoker_service_account_email}"


def test_secrets_exist_for_tokens_and_dispatch() -> None:
    res = _tf.resources(CORE)
    assert ("google_secret_manager_secret", "task_token") in res
    assert ("google_secret_manager_secret", "dispatch") in res


@pytest.mark.parametrize("folder", _tf.tf_folders(), ids=lambda p: str(p.relative_to(_tf.INFRA)))
def test_every_variable_and_output_is_described(folder) -> None:
    for kind in ("variable", "output"):
        for name, body in _tf.blocks(folder, kind).items():
            assert body.get("description", "").strip(), f"{folder.name}: {kind} {name} has no description"


@pytest.mark.parametrize("folder", _tf.tf_folders(), ids=lambda p: str(p.relative_to(_tf.INFRA)))
def test_providers_are_pinned(folder) -> None:
    terraform = [b for p in folder.glob("*.tf") for b in _tf.load(p).get("terraform", [])]
    assert terraform, f"{folder} has no terraform block"
    if folder.name == "openapi-document":
        assert "required_providers" not in terraform[0], "openapi-document must stay provider-free"
        return
    providers = terraform[0]["required_providers"][0]
    for name, spec in providers.items():
        assert re.fullmatch(r"~> \d+\.\d+", spec["version"]), (folder, name)


def test_example_environment_outputs_the_api_url() -> None:
    example = _tf.INFRA / "environments" / "example"
    assert _tf.blocks(example, "output")["api_url"]["value"] == "${module.servo.api_url}"
    assert (example / "terraform.tfvars.example").is_file()
