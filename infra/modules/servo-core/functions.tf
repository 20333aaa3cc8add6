# One function per folder in functions/, each with its own service account. The entry point comes from
# build/functions/manifest.json, which scripts/package_functions.py derives from each main.py (the
# function named like its folder), so Terraform and the artifact test name the same entry point.

resource "google_service_account" "function" {
  for_each     = toset(local.functions)
  project      = var.project_id
  account_id   = "${var.name_prefix}-fn-${each.value}"
  display_name = "Servo ${each.value} function runtime"
  depends_on   = [time_sleep.apis]
}

locals {
  # What every function deploy waits for: the zips' bucket readable by the build account, the build
  # account's roles, and the secrets' versions and accessors (a function whose secret has no version
  # yet, or that cannot read it, fails its first deploy).
  function_settings = {
    project_id            = var.project_id
    region                = var.region
    source_bucket         = local.sources_bucket
    build_service_account = google_service_account.build.id
    docker_repository     = google_artifact_registry_repository.functions.id
    concurrency           = var.function_concurrency
    labels                = local.labels
  }
}

# The functions behind the gateway. timers and compactor are separate blocks: they need the gateway's
# URL (callbackBaseUrl), and resources of one for_each module form one node in Terraform's graph.
module "api_function" {
  source   = "../servo-function"
  for_each = toset(local.api_functions)

  project_id            = local.function_settings.project_id
  region                = local.function_settings.region
  source_bucket         = local.function_settings.source_bucket
  build_service_account = local.function_settings.build_service_account
  docker_repository     = local.function_settings.docker_repository
  concurrency           = local.function_settings.concurrency
  labels                = local.function_settings.labels

  name                  = "${var.name_prefix}-${each.value}"
  entry_point           = local.artifacts[each.value].entry_point
  source_object         = local.source_objects[each.value]
  service_account_email = google_service_account.function[each.value].email
  environment           = local.common_env
  secret_environment    = local.function_secrets[each.value]
  max_instances         = var.function_max_instances
  timeout_seconds       = 60
  invoker_members       = ["serviceAccount:${google_service_account.gateway.email}"]

  depends_on = [
    terraform_data.build_ready,
    google_secret_manager_secret_version.task_token,
    google_secret_manager_secret_version.dispatch,
    google_secret_manager_secret_iam_member.task_token,
    google_secret_manager_secret_iam_member.dispatch,
  ]
}

module "timers" {
  source = "../servo-function"

  project_id            = local.function_settings.project_id
  region                = local.function_settings.region
  source_bucket         = local.function_settings.source_bucket
  build_service_account = local.function_settings.build_service_account
  docker_repository     = local.function_settings.docker_repository
  concurrency           = local.function_settings.concurrency
  labels                = local.function_settings.labels

  # The name is the Cloud Run service's, which local.timers_url is derived from.
  name                  = local.timers_name
  entry_point           = local.artifacts["timers"].entry_point
  source_object         = local.source_objects["timers"]
  service_account_email = google_service_account.function["timers"].email
  environment           = local.dispatcher_env
  secret_environment    = local.function_secrets["timers"]
  max_instances         = var.function_max_instances
  # The sweep walks every workspace; give it the Scheduler's attempt deadline.
  timeout_seconds = 300
  # Cloud Scheduler (sweep) and Cloud Tasks (due timers) of this project count as internal traffic.
  ingress = "ALLOW_INTERNAL_ONLY"
  invoker_members = [
    "serviceAccount:${google_service_account.scheduler.email}",
    "serviceAccount:${google_service_account.tasks.email}",
  ]

  depends_on = [
    terraform_data.build_ready,
    google_secret_manager_secret_version.task_token,
    google_secret_manager_secret_version.dispatch,
    google_secret_manager_secret_iam_member.task_token,
    google_secret_manager_secret_iam_member.dispatch,
  ]
}

module "compactor" {
  source = "../servo-function"

  project_id            = local.function_settings.project_id
  region                = local.function_settings.region
  source_bucket         = local.function_settings.source_bucket
  build_service_account = local.function_settings.build_service_account
  docker_repository     = local.function_settings.docker_repository
  concurrency           = local.function_settings.concurrency
  labels                = local.function_settings.labels

  name                  = "${var.name_prefix}-compactor"
  entry_point           = local.artifacts["compactor"].entry_point
  source_object         = local.source_objects["compactor"]
  service_account_email = google_service_account.function["compactor"].email
  environment           = local.dispatcher_env
  secret_environment    = local.function_secrets["compactor"]
  max_instances         = var.compactor_max_instances
  timeout_seconds       = 540
  # Eventarc deliveries count as internal traffic; nothing else should reach the compactor.
  ingress = "ALLOW_INTERNAL_ONLY"
  # Only Eventarc (as the trigger service account) may invoke the compactor.
  invoker_members = ["serviceAccount:${google_service_account.eventarc.email}"]

  event_trigger = {
    event_type            = "google.cloud.storage.object.v1.finalized"
    service_account_email = google_service_account.eventarc.email
    # Finalize events are at-least-once; retries re-deliver until the compactor acknowledges.
    retry_policy = "RETRY_POLICY_RETRY"
    filters = {
      bucket = google_storage_bucket.data.name
    }
  }

  depends_on = [
    terraform_data.build_ready,
    time_sleep.eventarc_iam,
    google_secret_manager_secret_version.task_token,
    google_secret_manager_secret_version.dispatch,
    google_secret_manager_secret_iam_member.task_token,
    google_secret_manager_secret_iam_member.dispatch,
  ]
}

locals {
  function_modules = merge(module.api_function, { timers = module.timers, compactor = module.compactor })
}
