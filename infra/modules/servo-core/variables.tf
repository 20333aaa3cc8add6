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
  validation {
    # Service account ids are at most 30 characters and "<prefix>-fn-compactor" is the longest.
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}[a-z0-9]$", var.name_prefix))
    error_message = "The name_prefix must be 2-17 characters of a-z, 0-9 and -, starting with a letter (service account ids are limited to 30 characters)."
  }
}

variable "bucket_name" {
  description = "Globally unique name of the Servo data bucket (ledger, state, manifests, run_keys, logs)."
  type        = string
}

variable "sources_bucket_name" {
  description = "Bucket holding the function zips (<fn>-<sha256>.zip), created and filled before the apply by scripts/upload_functions.sh (infra/README.md)."
  type        = string
}

variable "functions_manifest_path" {
  description = "Path of build/functions/manifest.json written by scripts/package_functions.py (zips sit beside it)."
  type        = string
}

variable "worker_url" {
  description = "Where dispatch envelopes go (the worker's /dispatch URL), SERVO_WORKER_URL."
  type        = string
}

variable "default_tenant" {
  description = "The deployment's one tenant: requests act for it, and a request naming another tenant in X-Servo-Tenant is refused (the gateway authenticates callers, not tenants)."
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
  validation {
    condition     = var.soft_delete_retention_days == 0 || (var.soft_delete_retention_days >= 7 && var.soft_delete_retention_days <= 90)
    error_message = "The soft_delete_retention_days must be 0 (disabled) or between 7 and 90: Cloud Storage accepts nothing else."
  }
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

variable "worker_max_instances" {
  description = "The worker service's max instances (pass the worker module's value): with worker_concurrency it sizes how many dispatches are in flight at once."
  type        = number
  default     = 10
}

variable "worker_concurrency" {
  description = "Tasks one worker instance runs at once (pass the worker module's value)."
  type        = number
  default     = 1
}

variable "function_concurrency" {
  description = "Concurrent requests per function instance."
  type        = number
  default     = 8
}

variable "timer_max_dispatches_per_second" {
  description = "Rate limit of the timers queue."
  type        = number
  default     = 20
}

variable "extra_worker_queues" {
  description = "Additional Cloud Tasks queues named by assets' worker_queue (the default queue serves default-queue)."
  type        = list(string)
  default     = []
  validation {
    condition     = length(setintersection(var.extra_worker_queues, ["dispatch", "sensors", "timers"])) == 0
    error_message = "The names dispatch, sensors and timers are Servo's own queues' keys; name extra queues otherwise."
  }
}

variable "sensor_max_concurrent_evaluations" {
  description = "Sensor evaluations the sensors queue hands the worker at once (capped at the worker's capacity): they share the worker with dispatches, and a 429 uses up one of an evaluation's 5 attempts."
  type        = number
  default     = 10
  validation {
    condition     = var.sensor_max_concurrent_evaluations >= 1
    error_message = "The sensor_max_concurrent_evaluations must be at least 1."
  }
}

variable "push_sensors" {
  description = "Push sensors (@sensor(push=True)) fed by Pub/Sub, as \"<workspace>/<sensor id>\" => publishers (IAM members granted roles/pubsub.publisher on that sensor's topic only; may be empty). Each gets a topic <prefix>-sensor-<workspace>-<sensor> and a push subscription to automation's POST /v1/workspaces/<workspace>/sensors/<sensor>/push?tenant=<default_tenant>."
  type        = map(list(string))
  default     = {}
  validation {
    condition     = alltrue([for key in keys(var.push_sensors) : can(regex("^[a-z0-9_-]{1,63}/[a-z][a-z0-9_]{0,63}$", key))])
    error_message = "Each push_sensors key is <workspace>/<sensor id>: a workspace id ([a-z0-9_-], at most 63 characters) and a sensor id as deploy accepts it ([a-z][a-z0-9_]{0,63})."
  }
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
  description = "Monitoring notification channel ids the alert policies notify (with alert_emails, at least one is required)."
  type        = list(string)
  default     = []
}

variable "alert_emails" {
  description = "E-mail addresses Terraform creates notification channels for; alerts without any channel would be silent."
  type        = list(string)
  default     = []
}

variable "alert_eventarc_oldest_unacked_seconds" {
  description = "Alert when a finalize event has waited this long for the compactor (Eventarc drops events after 24 h)."
  type        = number
  default     = 1800
}

variable "alert_task_failures_per_minute" {
  description = "Alert when Cloud Tasks attempts that did not succeed exceed this many per minute (10 minute window)."
  type        = number
  default     = 5
}

variable "alert_compaction_lag_ms" {
  description = "Alert when the compactor's logged compaction lag stays above this many milliseconds for 10 minutes."
  type        = number
  default     = 60000
}

variable "billing_account" {
  description = "Billing account id (XXXXXX-XXXXXX-XXXXXX) for a monthly budget on this project; null creates no budget."
  type        = string
  default     = null
}

variable "monthly_budget" {
  description = "Monthly budget in the billing account's currency; alerts at 50, 90 and 100 %."
  type        = number
  default     = 100
}

variable "gateway_region" {
  description = "Region of the API Gateway gateway; null means var.region. API Gateway runs in fewer regions than Cloud Functions (api_gateway_regions)."
  type        = string
  default     = null
}

variable "api_gateway_regions" {
  description = "Regions API Gateway can deploy a gateway to (Google's list at the time of writing; extend it when Google adds one)."
  type        = list(string)
  default = [
    "asia-east1", "asia-northeast1", "australia-southeast1", "europe-west1", "europe-west2",
    "us-central1", "us-east1", "us-east4", "us-west2",
  ]
}

variable "propagation_wait" {
  description = "How long Terraform waits after enabling APIs and granting service agents before using them (a duration such as 90s); one apply then works on an empty project."
  type        = string
  default     = "90s"
}

variable "task_token_key_version" {
  description = "Raise by one to rotate the task-token signing key (a new Secret Manager version; see secrets.tf)."
  type        = number
  default     = 1
}

variable "task_token_previous_version" {
  description = "During a rotation: the Secret Manager version number of the key being replaced, which callback still accepts; null otherwise."
  type        = number
  default     = null
}

variable "dispatch_secret_version" {
  description = "Raise by one to rotate the dispatch shared secret (redeploy the worker after it)."
  type        = number
  default     = 1
}

variable "function_images_kept" {
  description = "Newest images kept per function in Artifact Registry."
  type        = number
  default     = 5
}

variable "function_image_max_age_days" {
  description = "Function images older than this are deleted (the newest function_images_kept are always kept)."
  type        = number
  default     = 30
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
