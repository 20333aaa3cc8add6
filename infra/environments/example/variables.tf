variable "project_id" {
  description = "GCP project to deploy Servo into."
  type        = string
}

variable "region" {
  description = "Region for every regional resource."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of resource names."
  type        = string
  default     = "servo"
}

variable "bucket_name" {
  description = "Globally unique name of the Servo data bucket."
  type        = string
}

variable "functions_manifest_path" {
  description = "build/functions/manifest.json from scripts/package_functions.py (relative to this folder by default)."
  type        = string
  default     = "../../../build/functions/manifest.json"
}

variable "sources_bucket_name" {
  description = "Bucket the function zips were uploaded to by scripts/upload_functions.sh (README step 2 creates it)."
  type        = string
}

variable "gateway_region" {
  description = "Region of the API gateway when var.region has no API Gateway (null: var.region)."
  type        = string
  default     = null
}

variable "worker_max_instances" {
  description = "Upper bound on worker instances; with worker_concurrency it sizes the dispatch queue."
  type        = number
  default     = 10
}

variable "worker_concurrency" {
  description = "Tasks one worker instance runs at once (1 isolates user code runs)."
  type        = number
  default     = 1
}

variable "alert_emails" {
  description = "E-mail addresses the alerts and the budget notify (or give alert_notification_channels)."
  type        = list(string)
  default     = []
}

variable "billing_account" {
  description = "Billing account id for a monthly budget on the project; null: no budget."
  type        = string
  default     = null
}

variable "monthly_budget" {
  description = "Monthly budget amount (billing account currency)."
  type        = number
  default     = 100
}

variable "worker_image" {
  description = "Worker container image, pinned by digest."
  type        = string
}

variable "worker_project_roles" {
  description = "Project roles the user's asset code needs at run time."
  type        = list(string)
  default     = []
}

variable "default_tenant" {
  description = "Tenant used when a request names none."
  type        = string
  default     = "default"
}

variable "log_retention_days" {
  description = "Days captured task logs are kept."
  type        = number
  default     = 30
}

variable "api_client_members" {
  description = "Principals allowed to call the API, e.g. [\"user:you@example.com\"]."
  type        = list(string)
  default     = []
}

variable "alert_notification_channels" {
  description = "Monitoring notification channel ids for the alert policies."
  type        = list(string)
  default     = []
}

variable "push_sensors" {
  description = "Push sensors to feed from Pub/Sub, \"<workspace>/<sensor id>\" => publishers (a topic and push subscription each); see servo-core's variable."
  type        = map(list(string))
  default     = {}
}
