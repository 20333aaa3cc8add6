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

# What every function deploy waits for: the zips all present and buildable by the build account,
# and the secrets' versions and accessors (a function whose secret has no version yet, or that cannot
# read it, fails its first deploy).
resource "terraform_data" "functions_ready" {
  depends_on = [
    terraform_data.build_ready,
    google_secret_manager_secret_version.task_token,
    google_secret_manager_secret_version.dispatch,
    google_secret_manager_secret_iam_member.task_token,
    google_secret_manager_secret_iam_member.dispatch,
  ]
}

# The functions behind the gateway.
module "api_function" {
  source   = "../servo-function"
  for_each = toset(local.api_functions)

  project_id            = var.project_id
  region                = var.region
  source_bucket         = local.sources_bucket
  build_service_account = google_service_account.build.id
  docker_repository     = google_artifact_registry_repository.functions.id
  concurrency           = var.function_concurrency
  labels                = local.labels

  name                  = "${var.name_prefix}-${each.value}"
  entry_point           = local.artifacts[each.value].entry_point
  source_object         = local.source_objects[each.value]
  service_account_email = google_service_account.function[each.value].email
  environment           = local.common_env
  secret_environment    = local.function_secrets[each.value]
  max_instances         = var.function_max_instances
  timeout_seconds       = 60
  invoker_members       = ["serviceAccount:${google_service_account.gateway.email}"]

  depends_on = [terraform_data.functions_ready]
}

# The dispatchers (timers, compactor, automation) hand workers the gateway's URL (callbackBaseUrl), so
# they are a second block: resources of one for_each module form one node in Terraform's graph, and the
# gateway needs the API functions' URLs. timers and the compactor accept internal traffic only: Cloud
# Scheduler and Cloud Tasks (timers) and Eventarc (compactor) of this project count as internal.
# automation is behind the gateway as well, which reaches it at its run.app URL (local.automation_url,
# known at plan time, as timers'), so that URL does not depend on this block; it enqueues manual sensor
# evaluations, whose worker reports to the gateway, and receives push sensors' messages (sensors.tf).
locals {
  dispatcher_functions = {
    timers = {
      # The name is the Cloud Run service's, which local.timers_url is derived from.
      name = local.timers_name
      # The sweep walks every workspace; give it the Scheduler's attempt deadline.
      timeout       = 300
      max_instances = var.function_max_instances
      invokers = [
        "serviceAccount:${google_service_account.scheduler.email}",
        "serviceAccount:${google_service_account.tasks.email}",
      ]
      event_trigger = null
      ingress       = "ALLOW_INTERNAL_ONLY"
      environment   = local.dispatcher_env
    }
    compactor = {
      name          = "${var.name_prefix}-compactor"
      timeout       = 540
      max_instances = var.compactor_max_instances
      # Only Eventarc (as the trigger service account) may invoke the compactor.
      invokers = ["serviceAccount:${google_service_account.eventarc.email}"]
      event_trigger = {
        event_type            = "google.cloud.storage.object.v1.finalized"
        service_account_email = google_service_account.eventarc.email
        # Finalize events are at-least-once; retries re-deliver until the compactor acknowledges.
        retry_policy = "RETRY_POLICY_RETRY"
        filters = {
          bucket = google_storage_bucket.data.name
        }
      }
      ingress     = "ALLOW_INTERNAL_ONLY"
      environment = local.dispatcher_env
    }
    automation = {
      name          = local.automation_name
      timeout       = 60
      max_instances = var.function_max_instances
      # The gateway, and Pub/Sub pushing a push sensor's messages, both from outside the project's network.
      invokers = [
        "serviceAccount:${google_service_account.gateway.email}",
        "serviceAccount:${google_service_account.pubsub_push.email}",
      ]
      event_trigger = null
      ingress       = "ALLOW_ALL"
      environment   = merge(local.common_env, { SERVO_API_URL = local.api_url }, local.push_env)
    }
  }
}

# automation was deployed with the API functions before it enqueued sensor evaluations.
moved {
  from = module.api_function["automation"]
  to   = module.dispatcher["automation"]
}

module "dispatcher" {
  source   = "../servo-function"
  for_each = local.dispatcher_functions

  project_id            = var.project_id
  region                = var.region
  source_bucket         = local.sources_bucket
  build_service_account = google_service_account.build.id
  docker_repository     = google_artifact_registry_repository.functions.id
  concurrency           = var.function_concurrency
  labels                = local.labels

  name                  = each.value.name
  entry_point           = local.artifacts[each.key].entry_point
  source_object         = local.source_objects[each.key]
  service_account_email = google_service_account.function[each.key].email
  environment           = each.value.environment
  secret_environment    = local.function_secrets[each.key]
  max_instances         = each.value.max_instances
  timeout_seconds       = each.value.timeout
  ingress               = each.value.ingress
  invoker_members       = each.value.invokers
  event_trigger         = each.value.event_trigger

  # The compactor's Eventarc trigger needs the service agents' grants to have propagated.
  depends_on = [terraform_data.functions_ready, time_sleep.eventarc_iam]
}

locals {
  function_modules = merge(module.api_function, module.dispatcher)
}
