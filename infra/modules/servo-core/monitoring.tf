# Log-based metrics from the functions' structured JSON logs (design §8): one entry per request with
# jsonPayload.latency_ms, and severity ERROR for every failed request or unhandled error. 2nd-gen
# functions log as their Cloud Run service, whose name is the function name; it is the metric label.

locals {
  servo_services_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${var.name_prefix}-\""
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
    status   = "EXTRACT(jsonPayload.httpRequest.status)"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 1.4
      scale              = 1
    }
  }
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
}

resource "google_monitoring_alert_policy" "errors" {
  project               = var.project_id
  display_name          = "Servo: function errors"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels

  conditions {
    display_name = "ERROR log entries per function above ${var.alert_error_rate_per_minute}/min"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.errors.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_error_rate_per_minute / 60
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.function"]
      }
    }
  }

  documentation {
    content   = "A Servo function logs errors. Search Cloud Logging for severity>=ERROR on the named service; every entry has a correlation_id label matching the correlationId the caller got."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "latency" {
  project               = var.project_id
  display_name          = "Servo: request latency p95"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels

  conditions {
    display_name = "p95 latency above ${var.alert_latency_p95_ms} ms"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.request_latency.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_latency_p95_ms
      duration        = "600s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
        group_by_fields      = ["metric.label.function"]
      }
    }
  }

  documentation {
    content   = "A Servo function answers slowly. Compaction lag and outbox depth are logged per batch by the compactor."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "queue_depth" {
  project               = var.project_id
  display_name          = "Servo: dispatch queue backlog"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels

  conditions {
    display_name = "Cloud Tasks queue depth above ${var.alert_queue_depth}"
    condition_threshold {
      filter          = "metric.type=\"cloudtasks.googleapis.com/queue/depth\" AND resource.type=\"cloud_tasks_queue\" AND resource.label.queue_id=\"${google_cloud_tasks_queue.dispatch.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_queue_depth
      duration        = "900s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  documentation {
    content   = "Dispatches are not draining: the worker may be failing or rate-limited."
    mime_type = "text/markdown"
  }
}
