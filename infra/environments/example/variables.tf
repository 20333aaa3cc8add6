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

variable "upload_sources" {
  description = "Let Terraform upload the function zips (false when CI already uploaded them)."
  type        = bool
  default     = true
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
