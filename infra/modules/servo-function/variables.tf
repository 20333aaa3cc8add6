variable "project_id" {
  description = "Project that hosts the function."
  type        = string
}

variable "region" {
  description = "Region of the function (and of its Eventarc trigger, which must match the bucket's region)."
  type        = string
}

variable "name" {
  description = "Function name: the folder under functions/ and, by convention, the entry point."
  type        = string
}

variable "entry_point" {
  description = "Python function called by functions-framework; build/functions/manifest.json names it."
  type        = string
}

variable "source_bucket" {
  description = "Bucket holding the function's zip."
  type        = string
}

variable "source_object" {
  description = "Content-addressed zip object (<fn>-<sha256>.zip): a new name per content change is what redeploys."
  type        = string
}

variable "service_account_email" {
  description = "The function's own runtime service account (least privilege per the writer table)."
  type        = string
}

variable "environment" {
  description = "Plain environment variables (SERVO_* settings)."
  type        = map(string)
  default     = {}
}

variable "secret_environment" {
  description = "Environment variable name -> Secret Manager secret id and version (read at instance start)."
  type = map(object({
    secret  = string
    version = string
  }))
  default = {}
}

variable "memory" {
  description = "Memory per instance (pyarrow needs more than the 256M default)."
  type        = string
  default     = "512Mi"
}

variable "timeout_seconds" {
  description = "Request timeout. HTTP functions may take up to 3600 s; event-driven ones at most 540 s."
  type        = number
  default     = 60
}

variable "min_instances" {
  description = "Warm instances; 0 keeps the deployment free at rest."
  type        = number
  default     = 0
}

variable "max_instances" {
  description = "Upper bound on instances, a cost and blast-radius guard."
  type        = number
  default     = 20
}

variable "concurrency" {
  description = "Concurrent requests per instance (needs at least 1 vCPU when above 1)."
  type        = number
  default     = 8
}

variable "cpu" {
  description = "vCPUs per instance."
  type        = string
  default     = "1"
}

variable "ingress" {
  description = "ALLOW_ALL for functions API Gateway reaches (IAM still applies); ALLOW_INTERNAL_ONLY for those only Cloud Scheduler, Cloud Tasks or Eventarc of the same project call."
  type        = string
  default     = "ALLOW_ALL"
}

variable "event_trigger" {
  description = "Optional CloudEvent trigger: event type, filters (attribute -> value) and the service account Eventarc invokes with."
  type = object({
    event_type            = string
    filters               = map(string)
    service_account_email = string
    retry_policy          = optional(string, "RETRY_POLICY_RETRY")
  })
  default = null
}

variable "labels" {
  description = "Labels applied to the function."
  type        = map(string)
  default     = {}
}

variable "invoker_members" {
  description = "Principals allowed to invoke the function (roles/run.invoker on its Cloud Run service), e.g. the gateway's service account."
  type        = list(string)
  default     = []
}

variable "build_service_account" {
  description = "Service account Cloud Build builds the function with (projects/PROJECT/serviceAccounts/EMAIL); new projects' default build account may lack the rights."
  type        = string
}

variable "docker_repository" {
  description = "Artifact Registry repository (projects/P/locations/R/repositories/NAME) the built image goes to; it carries the cleanup policy."
  type        = string
}
