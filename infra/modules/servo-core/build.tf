# How the functions are built. Cloud Build runs each deploy as a build service account; projects made
# since 2024 no longer give the default one the rights it needs, so Servo brings its own, with only
# what a function build uses: read the zip, write the image, write build logs.

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "Servo function build identity (Cloud Build)"
  depends_on   = [time_sleep.apis]
}

resource "google_project_iam_member" "build" {
  for_each = toset(["roles/logging.logWriter", "roles/artifactregistry.writer"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.build.email}"
}

# The sources bucket is created before the first apply (infra/README.md, step 2), not by Terraform.
resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = local.sources_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

# The functions' images, with a cleanup policy: every deploy adds one, and only the newest few of
# each function are ever run again (a rollback redeploys from its zip anyway).
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption; a CMEK is an organisation choice, not Servo's.
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  format        = "DOCKER"
  description   = "Images of the Servo functions"
  labels        = local.labels

  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.function_images_kept
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "${var.function_image_max_age_days * 86400}s"
    }
  }

  depends_on = [time_sleep.apis]
}

# New IAM bindings take a minute or two to be honoured; a deploy that starts before fails its build.
resource "time_sleep" "build_iam" {
  create_duration = var.propagation_wait
  depends_on      = [google_project_iam_member.build, google_storage_bucket_iam_member.build_reads_sources]
}

# One node for "the functions can be built": the artifacts are all present and the build can run.
resource "terraform_data" "build_ready" {
  depends_on = [terraform_data.artifacts_present, time_sleep.build_iam, google_artifact_registry_repository.functions]
}
