# The worker: a Cloud Run service running the user's image. Cloud Tasks reaches it with an OIDC token
# of the Cloud Tasks service account (the only invoker); the worker reports back to the control plane
# over HTTPS with its per-attempt task token, so it needs no access to the Servo bucket.

resource "google_service_account" "worker" {
  project      = var.project_id
  account_id   = substr("${var.name}-sa", 0, 30)
  display_name = "Servo worker (${var.name}) runtime"
}

resource "google_project_iam_member" "worker_roles" {
  for_each = toset(var.project_roles)
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_secret_manager_secret_iam_member" "dispatch_secret" {
  project   = var.project_id
  secret_id = var.dispatch_secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_cloud_run_v2_service" "worker" {
  project  = var.project_id
  location = var.region
  name     = var.name
  # Only Cloud Tasks of this project calls the worker, which counts as internal traffic.
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = false

  template {
    service_account                  = google_service_account.worker.email
    timeout                          = "${var.timeout_seconds}s"
    max_instance_request_concurrency = var.concurrency
    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
    }
    containers {
      image = var.image
      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
      }
      dynamic "env" {
        for_each = var.environment
        content {
          name  = env.key
          value = env.value
        }
      }
      env {
        name = "SERVO_DISPATCH_SECRET"
        value_source {
          secret_key_ref {
            secret  = var.dispatch_secret_id
            version = "latest"
          }
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.dispatch_secret]
}

resource "google_cloud_run_v2_service_iam_member" "tasks_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.worker.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.invoker_service_account_email}"
}
