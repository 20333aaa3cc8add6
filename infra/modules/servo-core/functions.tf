# One function per folder in functions/, each with its own service account. The entry point comes from
# build/functions/manifest.json, which scripts/package_functions.py derives from each main.py (the
# function named like its folder), so Terraform and the artifact test name the same entry point.

resource "google_service_account" "function" {
  for_each     = toset(local.functions)
  project      = var.project_id
  account_id   = "${var.name_prefix}-fn-${each.value}"
  display_name = "Servo ${each.value} function runtime"
}

# The functions behind the gateway. timers and compactor are separate blocks: they need the gateway's
# URL (callbackBaseUrl), and resources of one for_each module form one node in Terraform's graph.
module "api_function" {
  source   = "../servo-function"
  for_each = toset(local.api_functions)

  project_id            = var.project_id
  region                = var.region
  name                  = "${var.name_prefix}-${each.value}"
  entry_point           = local.artifacts[each.value].entry_point
  source_bucket         = google_storage_bucket.sources.name
  source_object         = local.source_objects[each.value]
  service_account_email = google_service_account.function[each.value].email
  environment           = local.common_env
  secret_environment    = local.function_secrets[each.value]
  max_instances         = var.function_max_instances
  timeout_seconds       = 60
  invoker_members       = ["serviceAccount:${google_service_account.gateway.email}"]
  labels                = local.labels

  depends_on = [
    google_storage_bucket_object.source,
    google_secret_manager_secret_iam_member.task_token,
    google_secret_manager_secret_iam_member.dispatch,
  ]
}

module "timers" {
  source = "../servo-function"

  project_id            = var.project_id
  region                = var.region
  name                  = "${var.name_prefix}-timers"
  entry_point           = local.artifacts["timers"].entry_point
  source_bucket         = google_storage_bucket.sources.name
  source_object         = local.source_objects["timers"]
  service_account_email = google_service_account.function["timers"].email
  environment           = local.dispatcher_env
  secret_environment    = local.function_secrets["timers"]
  max_instances         = var.function_max_instances
  # The sweep walks every workspace; give it the Scheduler's attempt deadline.
  timeout_seconds = 300
  # Cloud Scheduler (sweep) and Cloud Tasks (due timers) only; never the gateway.
  invoker_members = [
    "serviceAccount:${google_service_account.scheduler.email}",
    "serviceAccount:${google_service_account.tasks.email}",
  ]
  labels = local.labels

  depends_on = [
    google_storage_bucket_object.source,
    google_secret_manager_secret_iam_member.task_token,
    google_secret_manager_secret_iam_member.dispatch,
  ]
}

module "compactor" {
  source = "../servo-function"

  project_id            = var.project_id
  region                = var.region
  name                  = "${var.name_prefix}-compactor"
  entry_point           = local.artifacts["compactor"].entry_point
  source_bucket         = google_storage_bucket.sources.name
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
  labels          = local.labels

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
    google_storage_bucket_object.source,
    google_project_iam_member.gcs_pubsub_publisher,
    google_project_iam_member.eventarc_receiver,
    google_secret_manager_secret_iam_member.task_token,
    google_secret_manager_secret_iam_member.dispatch,
  ]
}

locals {
  function_modules = merge(module.api_function, { timers = module.timers, compactor = module.compactor })
}
