# Example environment: one Servo control plane and one worker service in a single project.
# Build the zips first (python scripts/package_functions.py), then `terraform apply` here.

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}

module "servo" {
  source = "../../modules/servo-core"

  project_id              = var.project_id
  region                  = var.region
  name_prefix             = var.name_prefix
  bucket_name             = var.bucket_name
  functions_manifest_path = var.functions_manifest_path
  upload_sources          = var.upload_sources
  worker_url              = module.worker.dispatch_url
  default_tenant          = var.default_tenant
  log_retention_days      = var.log_retention_days
  api_client_members      = var.api_client_members

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
}
