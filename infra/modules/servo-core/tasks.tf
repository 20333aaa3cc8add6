# Cloud Tasks carries dispatch envelopes to the worker and due timers to the timers function. Every
# non-2xx answer is retried, so retries are bounded and backed off; a task that exhausts them is
# repaired by the minute sweep (re-drive stuck dispatches), never silently lost.

locals {
  queue_names = concat([google_cloud_tasks_queue.dispatch.name], [for q in google_cloud_tasks_queue.extra : q.name])
}

resource "google_cloud_tasks_queue" "dispatch" {
  project  = var.project_id
  location = var.region
  # A deleted queue name cannot be reused for 7 days; keep it stable.
  name = "${var.name_prefix}-dispatch"

  rate_limits {
    max_dispatches_per_second = var.task_max_dispatches_per_second
    max_concurrent_dispatches = var.task_max_concurrent_dispatches
  }

  retry_config {
    max_attempts       = var.task_max_attempts
    min_backoff        = var.task_min_backoff
    max_backoff        = var.task_max_backoff
    max_doublings      = 6
    max_retry_duration = "3600s"
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }
}

resource "google_cloud_tasks_queue" "extra" {
  for_each = toset(var.extra_worker_queues)
  project  = var.project_id
  location = var.region
  name     = each.value

  rate_limits {
    max_dispatches_per_second = var.task_max_dispatches_per_second
    max_concurrent_dispatches = var.task_max_concurrent_dispatches
  }

  retry_config {
    max_attempts       = var.task_max_attempts
    min_backoff        = var.task_min_backoff
    max_backoff        = var.task_max_backoff
    max_doublings      = 6
    max_retry_duration = "3600s"
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }
}

# The timer sweep: every minute, an OIDC-authenticated POST to timers (design §2).
resource "google_cloud_scheduler_job" "sweep" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-timer-sweep"
  description      = "Fire due timers, detect zombies, re-drive stuck dispatches, re-kick lost compactions"
  schedule         = var.sweep_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "300s"

  retry_config {
    # The next minute's sweep is the retry; piling retries on a slow sweep only adds load.
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${local.timers_url}/v1/timers/sweep"
    body        = base64encode("{}")
    headers = {
      "Content-Type" = "application/json"
    }
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.timers_url
    }
  }

  depends_on = [module.timers]
}
