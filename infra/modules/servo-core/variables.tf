variable "project_id" {
  description = "GCP project Servo is deployed into."
  type        = string
}

variable "region" {
  description = "Region for the functions, queue, scheduler and the bucket (one region keeps Eventarc and latency simple)."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every resource name; lets several Servo deployments share a project."
  type        = string
  default     = "servo"
}

variable "bucket_name" {
  description = "Globally unique name of the Servo data bucket (ledger, state, manifests, run_keys, logs)."
  type        = string
}

variable "sources_bucket_name" {
  description = "Globally unique name of the bucket holding function zips; defaults to <bucket_name>-sources."
  type        = string
  default     = null
}

variable "functions_manifest_path" {
  description = "Path of build/functions/manifest.json written by scripts/package_functions.py (zips sit beside it)."
  type        = string
}

variable "upload_sources" {
  description = "Upload the zips from functions_manifest_path. Set false when the pipeline has already uploaded <fn>-<sha256>.zip to the sources bucket."
  type        = bool
  default     = true
}

variable "worker_url" {
  description = "Where dispatch envelopes go (the worker's /dispatch URL), SERVO_WORKER_URL."
  type        = string
}

variable "default_tenant" {
  description = "Tenant a request acts for when no X-Servo-Tenant header names one."
  type        = string
  default     = "default"
}

variable "log_retention_days" {
  description = "Captured task stdout/stderr (objects ending in .log, under logs/) is deleted after this many days."
  type        = number
  default     = 30
}

variable "soft_delete_retention_days" {
  description = "GCS soft-delete window: deleted or overwritten objects stay recoverable this long (0 disables; 7-90)."
  type        = number
  default     = 7
}

variable "function_max_instances" {
  description = "Max instances per function."
  type        = number
  default     = 20
}

variable "compactor_max_instances" {
  description = "Max compactor instances; compactions batch, so a few instances keep up with many finalize events."
  type        = number
  default     = 10
}

variable "task_max_attempts" {
  description = "Cloud Tasks delivery attempts per task before it is dropped (the sweep re-drives lost dispatches)."
  type        = number
  default     = 10
}

variable "task_min_backoff" {
  description = "Cloud Tasks minimum retry backoff."
  type        = string
  default     = "5s"
}

variable "task_max_backoff" {
  description = "Cloud Tasks maximum retry backoff (design §6 caps retry backoff at 300 s)."
  type        = string
  default     = "300s"
}

variable "task_max_dispatches_per_second" {
  description = "Rate limit of the dispatch queue, protecting the worker and the control plane."
  type        = number
  default     = 50
}

variable "task_max_concurrent_dispatches" {
  description = "Tasks in flight at once on the dispatch queue."
  type        = number
  default     = 100
}

variable "extra_worker_queues" {
  description = "Additional Cloud Tasks queues named by assets' worker_queue (the default queue serves default-queue)."
  type        = list(string)
  default     = []
}

variable "sweep_schedule" {
  description = "Cron schedule of the timer sweep (design §2: every minute)."
  type        = string
  default     = "* * * * *"
}

variable "api_audience" {
  description = "Audience API Gateway requires in callers' ID tokens."
  type        = string
  default     = "servo-api"
}

variable "api_client_members" {
  description = "Principals allowed to call the control-plane API (granted Token Creator on the API client service account), e.g. [\"group:data-eng@example.com\"]."
  type        = list(string)
  default     = []
}

variable "openapi_path" {
  description = "The OpenAPI 2.0 document; defaults to infra/openapi.yaml beside the modules."
  type        = string
  default     = null
}

variable "alert_notification_channels" {
  description = "Monitoring notification channel ids the alert policies notify."
  type        = list(string)
  default     = []
}

variable "alert_error_rate_per_minute" {
  description = "Alert when a function logs more than this many ERROR entries per minute (5 minute window)."
  type        = number
  default     = 5
}

variable "alert_latency_p95_ms" {
  description = "Alert when a function's p95 request latency exceeds this many milliseconds for 10 minutes."
  type        = number
  default     = 2000
}

variable "alert_queue_depth" {
  description = "Alert when the dispatch queue holds more than this many tasks for 15 minutes."
  type        = number
  default     = 1000
}

variable "labels" {
  description = "Labels applied to every labelled resource."
  type        = map(string)
  default     = {}
}
