# Example environment: one Servo control plane and one worker service in a single project.
# Follow infra/README.md: bootstrap the state and sources buckets, build and upload the zips, then
# `terraform apply` here.

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}

locals {
  # The worker's capacity sizes the dispatch queue (servo-core tasks.tf): one value for both.
  worker_max_instances = var.worker_max_instances
  worker_concurrency   = var.worker_concurrency
}

module "servo" {
  source = "../../modules/servo-core"

  project_id              = var.project_id
  region                  = var.region
  gateway_region          = var.gateway_region
  name_prefix             = var.name_prefix
  bucket_name             = var.bucket_name
  sources_bucket_name     = var.sources_bucket_name
  functions_manifest_path = var.functions_manifest_path
  worker_url              = module.worker.dispatch_url
  worker_max_instances    = local.worker_max_instances
  worker_concurrency      = local.worker_concurrency
  default_tenant          = var.default_tenant
  log_retention_days      = var.log_retention_days
  api_client_members      = var.api_client_members
  billing_account         = var.billing_account
  monthly_budget          = var.monthly_budget
  push_sensors            = var.push_sensors

  alert_emails                = var.alert_emails
  alert_notification_channels = var.alert_notification_channels
}

module "worker" {
  source = "../../modules/worker-cloud-run"

  project_id                    = var.project_id
  region                        = var.region
  name                          = "${var.name_prefix}-worker"
  image                         = var.worker_image
  invoker_service_account_email = module.servo.tasks_service_account
  dispatch_secret_id            = module.servo.dispatch_secret_id
  environment                   = { SERVO_TENANT = var.default_tenant }
  project_roles                 = var.worker_project_roles
  max_instances                 = local.worker_max_instances
  concurrency                   = local.worker_concurrency
}
