# One Cloud Function (2nd gen, Python 3.11) from a prebuilt, content-addressed zip.
# No archive_file here on purpose (style.md §3): zipping at plan time ignores depends_on and breaks
# pipelines that plan and apply in separate steps; scripts/package_functions.py builds the zip.

resource "google_cloudfunctions2_function" "this" {
  #checkov:skip=CKV_GCP_124:API Gateway does not count as internal traffic, so the functions behind it need ALLOW_ALL; IAM (run.invoker for the gateway's account only, and on automation the Pub/Sub push account) is the gate. timers and the compactor set ALLOW_INTERNAL_ONLY.
  project     = var.project_id
  location    = var.region
  name        = var.name
  description = "Servo ${var.name} function"
  labels      = merge(var.labels, { "servo-function" = var.name })

  build_config {
    runtime           = "python311"
    entry_point       = var.entry_point
    service_account   = var.build_service_account
    docker_repository = var.docker_repository
    source {
      storage_source {
        bucket = var.source_bucket
        object = var.source_object
      }
    }
  }

  service_config {
    service_account_email            = var.service_account_email
    available_memory                 = var.memory
    available_cpu                    = var.cpu
    timeout_seconds                  = var.timeout_seconds
    min_instance_count               = var.min_instances
    max_instance_count               = var.max_instances
    max_instance_request_concurrency = var.concurrency
    ingress_settings                 = var.ingress
    all_traffic_on_latest_revision   = true
    # Cloud Functions adds LOG_EXECUTION_ID=true to every 2nd-gen function; declaring it keeps plans
    # from showing a diff on every function forever.
    environment_variables = merge(var.environment, { LOG_EXECUTION_ID = "true" })

    dynamic "secret_environment_variables" {
      for_each = var.secret_environment
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }

  dynamic "event_trigger" {
    for_each = var.event_trigger == null ? [] : [var.event_trigger]
    content {
      trigger_region        = var.region
      event_type            = event_trigger.value.event_type
      retry_policy          = event_trigger.value.retry_policy
      service_account_email = event_trigger.value.service_account_email
      dynamic "event_filters" {
        for_each = event_trigger.value.filters
        content {
          attribute = event_filters.key
          value     = event_filters.value
        }
      }
    }
  }
}

# A 2nd-gen function is served by a Cloud Run service of the same name; invocation is run.invoker on it.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = toset(var.invoker_members)
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this.name
  role     = "roles/run.invoker"
  member   = each.value
}
