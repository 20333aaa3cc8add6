# Task-token signing key and the dispatch shared secret (design §7). Their values never enter the
# Terraform state or a saved plan: each is an ephemeral random value written through the version's
# write-only argument (Terraform >= 1.11). Functions and the worker read them from Secret Manager.
#
# Rotation (task-token key): raise task_token_key_version and set task_token_previous_version to the
# version number being replaced, apply; tokens carry the key id (a fingerprint of the key), and
# callback accepts the current and the previous key, so tokens minted before the rotation still work.
# Once the longest task timeout plus 5 minutes has passed, set task_token_previous_version = null.
# Replaced versions are left enabled (deletion_policy ABANDON) so the previous one stays readable;
# disable them by hand afterwards.

resource "google_secret_manager_secret" "task_token" {
  #checkov:skip=CKV_GCP_128:Google-managed encryption; a CMEK is an organisation choice, not Servo's.
  project   = var.project_id
  secret_id = "${var.name_prefix}-task-token-secret"
  labels    = local.labels
  replication {
    auto {}
  }
  depends_on = [time_sleep.apis]
}

resource "google_secret_manager_secret" "dispatch" {
  #checkov:skip=CKV_GCP_128:Google-managed encryption; a CMEK is an organisation choice, not Servo's.
  project   = var.project_id
  secret_id = "${var.name_prefix}-dispatch-secret"
  labels    = local.labels
  replication {
    auto {}
  }
  depends_on = [time_sleep.apis]
}

# HS256 keys need at least 256 bits (RFC 7518 §3.2); 64 characters are well above that.
ephemeral "random_password" "task_token" {
  length  = 64
  special = false
}

ephemeral "random_password" "dispatch" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret_version" "task_token" {
  secret                 = google_secret_manager_secret.task_token.id
  secret_data_wo         = ephemeral.random_password.task_token.result
  secret_data_wo_version = var.task_token_key_version
  deletion_policy        = "ABANDON"
}

resource "google_secret_manager_secret_version" "dispatch" {
  secret                 = google_secret_manager_secret.dispatch.id
  secret_data_wo         = ephemeral.random_password.dispatch.result
  secret_data_wo_version = var.dispatch_secret_version
  deletion_policy        = "ABANDON"
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
