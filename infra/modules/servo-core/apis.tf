# The Google APIs Servo uses, enabled by Terraform so that the configuration says what it needs.
# serviceusage and cloudresourcemanager must already be on for Terraform to call this at all (the
# README's bootstrap step enables them with the state bucket). disable_on_destroy = false: other
# workloads of the project may use the same APIs.

locals {
  apis = [
    "apigateway.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbilling.googleapis.com",
    "billingbudgets.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicecontrol.googleapis.com",
    "servicemanagement.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "api" {
  for_each           = toset(local.apis)
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# A freshly enabled API answers "has not been used in project ... or it is disabled" for a while, and
# enabling Eventarc and Pub/Sub creates service agents whose roles propagate for a few minutes more.
# Everything that calls those APIs waits for this, so one apply works on an empty project.
resource "time_sleep" "apis" {
  create_duration = var.propagation_wait
  depends_on      = [google_project_service.api]
}
