# Log-based metrics from the functions' structured JSON logs (design §8): one entry per request with
# jsonPayload.latency_ms, and severity ERROR for every failed request or unhandled error. 2nd-gen
# functions log as their Cloud Run service, whose name is the function name; it is the metric label.
#
# Only the functions' own stdout/stderr is counted: the worker service shares the name prefix, and
# Cloud Run writes its own request log (run.googleapis.com/requests) for every request, so a filter on
# the prefix alone would count each failed request twice and the worker's errors as the functions'.
# The request's status is in the entry's own httpRequest: Cloud Logging lifts a top-level httpRequest
# out of the JSON payload.

locals {
  function_service_names = [for fn in local.functions : fn == "timers" ? local.timers_name : "${var.name_prefix}-${fn}"]
  servo_services_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(${join(" OR ", [for name in local.function_service_names : "\"${name}\""])})",
    "logName=(\"projects/${var.project_id}/logs/run.googleapis.com%2Fstdout\" OR \"projects/${var.project_id}/logs/run.googleapis.com%2Fstderr\")",
  ])
  compactor_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.name_prefix}-compactor\""

  notification_channels = concat(
    var.alert_notification_channels,
    [for channel in google_monitoring_notification_channel.email : channel.id],
  )
}

resource "google_monitoring_notification_channel" "email" {
  for_each     = toset(var.alert_emails)
  project      = var.project_id
  display_name = "Servo alerts: ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }
  depends_on = [time_sleep.apis]
}

resource "google_logging_metric" "request_latency" {
  project     = var.project_id
  name        = "${var.name_prefix}/request_latency"
  description = "Servo request latency per function (ms), from jsonPayload.latency_ms"
  filter      = "${local.servo_services_filter} AND jsonPayload.latency_ms:*"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"
    labels {
      key         = "function"
      value_type  = "STRING"
      description = "Cloud Function (Cloud Run service) name"
    }
    labels {
      key         = "status"
      value_type  = "STRING"
      description = "HTTP status of the response"
    }
  }

  value_extractor = "EXTRACT(jsonPayload.latency_ms)"
  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
    status   = "EXTRACT(httpRequest.status)"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 1.4
      scale              = 1
    }
  }

  depends_on = [time_sleep.apis]
}

resource "google_logging_metric" "errors" {
  project     = var.project_id
  name        = "${var.name_prefix}/errors"
  description = "Servo log entries at severity ERROR or above, per function"
  filter      = "${local.servo_services_filter} AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "function"
      value_type  = "STRING"
      description = "Cloud Function (Cloud Run service) name"
    }
  }

  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
  }

  depends_on = [time_sleep.apis]
}

resource "google_logging_metric" "compaction_lag" {
  project     = var.project_id
  name        = "${var.name_prefix}/compaction_lag"
  description = "Time from the oldest newly folded ledger event to its publish (ms), per compaction batch"
  filter      = "${local.compactor_filter} AND jsonPayload.compaction_lag_ms:*"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"
  }

  value_extractor = "EXTRACT(jsonPayload.compaction_lag_ms)"

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 1.5
      scale              = 10
    }
  }

  depends_on = [time_sleep.apis]
}

resource "google_logging_metric" "scheduler_failures" {
  project     = var.project_id
  name        = "${var.name_prefix}/scheduler_failures"
  description = "Failed attempts of the Servo timer sweep job"
  filter      = "resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=\"${var.name_prefix}-timer-sweep\" AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [time_sleep.apis]
}

# An alert policy naming a log-based metric created in the same apply is refused until the metric has
# propagated ("Cannot find metric(s) that match type"), a known first-apply failure: wait for it.
resource "time_sleep" "log_metrics" {
  create_duration = var.propagation_wait
  depends_on = [
    google_logging_metric.request_latency,
    google_logging_metric.errors,
    google_logging_metric.compaction_lag,
    google_logging_metric.scheduler_failures,
  ]
}

locals {
  # Every alert: what it watches (a Monitoring filter), how it aggregates, and what to do.
  alerts = {
    errors = {
      name      = "Servo: function errors"
      condition = "ERROR log entries per function above ${var.alert_error_rate_per_minute}/min"
      filter    = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.errors.name}\" AND resource.type=\"cloud_run_revision\""
      threshold = var.alert_error_rate_per_minute / 60
      duration  = "300s"
      aligner   = "ALIGN_RATE"
      reducer   = "REDUCE_SUM"
      group_by  = ["metric.label.function"]
      doc       = "A Servo function logs errors. Search Cloud Logging for severity>=ERROR on the named service; every entry has a correlation_id label matching the correlationId the caller got."
    }
    latency = {
      name      = "Servo: request latency p95"
      condition = "p95 latency above ${var.alert_latency_p95_ms} ms"
      filter    = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.request_latency.name}\" AND resource.type=\"cloud_run_revision\""
      threshold = var.alert_latency_p95_ms
      duration  = "600s"
      aligner   = "ALIGN_DELTA"
      reducer   = "REDUCE_PERCENTILE_95"
      group_by  = ["metric.label.function"]
      doc       = "A Servo function answers slowly."
    }
    queue_depth = {
      name      = "Servo: dispatch queue backlog"
      condition = "Cloud Tasks queue depth above ${var.alert_queue_depth}"
      filter    = "metric.type=\"cloudtasks.googleapis.com/queue/depth\" AND resource.type=\"cloud_tasks_queue\" AND resource.label.queue_id=\"${google_cloud_tasks_queue.queue["dispatch"].name}\""
      threshold = var.alert_queue_depth
      duration  = "900s"
      aligner   = "ALIGN_MEAN"
      reducer   = "REDUCE_NONE"
      group_by  = []
      doc       = "Dispatches are not draining: the worker may be failing or at capacity."
    }
    task_failures = {
      name      = "Servo: Cloud Tasks attempts failing"
      condition = "Task attempts without a 2xx above ${var.alert_task_failures_per_minute}/min"
      filter    = "metric.type=\"cloudtasks.googleapis.com/queue/task_attempt_count\" AND resource.type=\"cloud_tasks_queue\" AND metric.label.response_code!=\"OK\""
      threshold = var.alert_task_failures_per_minute / 60
      duration  = "600s"
      aligner   = "ALIGN_RATE"
      reducer   = "REDUCE_SUM"
      group_by  = ["resource.label.queue_id"]
      doc       = "Cloud Tasks deliveries to the worker or to timers fail (401/403: OIDC audience or invoker role; 429: capacity; 5xx: the target). Failed dispatches are re-driven by the sweep."
    }
    scheduler_failures = {
      name      = "Servo: timer sweep failing"
      condition = "Cloud Scheduler sweep attempts failed for 5 minutes"
      filter    = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.scheduler_failures.name}\" AND resource.type=\"cloud_scheduler_job\""
      threshold = 0
      duration  = "300s"
      aligner   = "ALIGN_SUM"
      reducer   = "REDUCE_SUM"
      group_by  = []
      doc       = "The minute sweep fails: timers, zombie detection and the re-drive of lost dispatches have stopped. Check the timers function's logs and its invoker role for the scheduler account."
    }
    compaction_lag = {
      name      = "Servo: compaction lag"
      condition = "p95 compaction lag above ${var.alert_compaction_lag_ms} ms"
      filter    = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.compaction_lag.name}\" AND resource.type=\"cloud_run_revision\""
      threshold = var.alert_compaction_lag_ms
      duration  = "600s"
      aligner   = "ALIGN_DELTA"
      reducer   = "REDUCE_PERCENTILE_95"
      group_by  = []
      doc       = "Ledger events wait long before they are published: the compactor is slow, failing or starved of instances."
    }
    eventarc_backlog = {
      name      = "Servo: finalize events waiting for the compactor"
      condition = "Oldest unacknowledged Eventarc message older than ${var.alert_eventarc_oldest_unacked_seconds} s"
      filter    = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=starts_with(\"eventarc-${var.region}-${var.name_prefix}-compactor\")"
      threshold = var.alert_eventarc_oldest_unacked_seconds
      duration  = "300s"
      aligner   = "ALIGN_MAX"
      reducer   = "REDUCE_MAX"
      group_by  = []
      doc       = "Eventarc cannot deliver finalize events to the compactor and drops them after 24 h. The sweep re-kicks compaction of active workspaces, but fix the compactor before then."
    }
    sensor_dead_letters = {
      name      = "Servo: push sensor messages dead-lettered"
      condition = "Messages waiting in the push sensors' dead-letter subscription"
      filter    = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${google_pubsub_subscription.sensor_dead_letter.name}\""
      threshold = 0
      duration  = "300s"
      aligner   = "ALIGN_MAX"
      reducer   = "REDUCE_MAX"
      group_by  = []
      doc       = "Pub/Sub gave up on a push sensor's message after 10 deliveries (401/403: the push account's token or invoker role; 400/404: the envelope or the sensor id). The attribute CloudPubSubDeadLetterSourceSubscription names the sensor's subscription. Fix the cause, republish the data to the sensor's topic, then pull the dead letters with --auto-ack; they are kept 7 days."
    }
  }
}

resource "google_monitoring_alert_policy" "alert" {
  for_each              = local.alerts
  project               = var.project_id
  display_name          = each.value.name
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = each.value.condition
    condition_threshold {
      filter          = each.value.filter
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = each.value.duration
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = each.value.aligner
        cross_series_reducer = each.value.reducer
        group_by_fields      = each.value.group_by
      }
    }
  }

  documentation {
    content   = each.value.doc
    mime_type = "text/markdown"
  }

  lifecycle {
    precondition {
      condition     = length(local.notification_channels) > 0
      error_message = "Alerts would notify nobody: set alert_emails or alert_notification_channels."
    }
  }

  depends_on = [time_sleep.log_metrics]
}
