variable "project_id" {
  description = "Project that hosts the worker service."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run service."
  type        = string
}

variable "name" {
  description = "Cloud Run service name."
  type        = string
  default     = "servo-worker"
}

variable "image" {
  description = "User worker image (runs `servo worker` with the user's assets), pinned by digest: REGION-docker.pkg.dev/PROJECT/REPO/IMAGE@sha256:..."
  type        = string
}

variable "invoker_service_account_email" {
  description = "The service account Cloud Tasks signs dispatch OIDC tokens with; the only principal granted run.invoker."
  type        = string
}

variable "environment" {
  description = "Extra plain environment variables for the worker (SERVO_TENANT, SERVO_WORKSPACE, ...)."
  type        = map(string)
  default     = {}
}

variable "dispatch_secret_id" {
  description = "Secret Manager secret id of the dispatch shared secret (checked in addition to the OIDC token)."
  type        = string
}

variable "cpu" {
  description = "vCPUs per worker instance."
  type        = string
  default     = "1"
}

variable "memory" {
  description = "Memory per worker instance."
  type        = string
  default     = "1Gi"
}

variable "timeout_seconds" {
  description = "Request timeout; Cloud Tasks' dispatch deadline for a task (1800 s) must fit in it."
  type        = number
  default     = 1800
}

variable "max_instances" {
  description = "Upper bound on worker instances."
  type        = number
  default     = 10
}

variable "concurrency" {
  description = "Tasks per worker instance at once; 1 isolates user code runs from each other."
  type        = number
  default     = 1
}

variable "project_roles" {
  description = "Project roles the user's asset code needs (e.g. roles/bigquery.dataEditor); empty by default."
  type        = list(string)
  default     = []
}
