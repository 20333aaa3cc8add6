# Task-token signing key and the dispatch shared secret (design §7). Terraform creates the secrets and
# a random first version; rotate by adding a version (functions read "latest" at instance start).

resource "google_secret_manager_secret" "task_token" {
  #checkov:skip=CKV_GCP_128:Google-managed encryption; a CMEK is an organisation choice, not Servo's.
  project   = var.project_id
  secret_id = "${var.name_prefix}-task-token-secret"
  labels    = local.labels
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret" "dispatch" {
  #checkov:skip=CKV_GCP_128:Google-managed encryption; a CMEK is an organisation choice, not Servo's.
  project   = var.project_id
  secret_id = "${var.name_prefix}-dispatch-secret"
  labels    = local.labels
  replication {
    auto {}
  }
}

# HS256 keys need at least 256 bits (RFC 7518 §3.2); 64 characters are well above that.
resource "random_password" "task_token" {
  length  = 64
  special = false
}

resource "random_password" "dispatch" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret_version" "task_token" {
  secret      = google_secret_manager_secret.task_token.id
  secret_data = random_password.task_token.result
}

resource "google_secret_manager_secret_version" "dispatch" {
  secret      = google_secret_manager_secret.dispatch.id
  secret_data = random_password.dispatch.result
}

# Accessor per function, only for the secrets it reads (local.function_secrets).
locals {
  token_readers    = [for fn, secrets in local.function_secrets : fn if contains(keys(secrets), "SERVO_TOKEN_SECRET")]
  dispatch_readers = [for fn, secrets in local.function_secrets : fn if contains(keys(secrets), "SERVO_DISPATCH_SECRET")]
}

resource "google_secret_manager_secret_iam_member" "task_token" {
  for_each  = toset(local.token_readers)
  project   = var.project_id
  secret_id = google_secret_manager_secret.task_token.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.value].email}"
}

resource "google_secret_manager_secret_iam_member" "dispatch" {
  for_each  = toset(local.dispatch_readers)
  project   = var.project_id
  secret_id = google_secret_manager_secret.dispatch.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.value].email}"
}
