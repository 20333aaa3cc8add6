output "url" {
  description = "Worker URL; dispatch envelopes are POSTed to <url>/dispatch (SERVO_WORKER_URL)."
  value       = google_cloud_run_v2_service.worker.uri
}

output "dispatch_url" {
  description = "The URL the control plane dispatches to."
  value       = "${google_cloud_run_v2_service.worker.uri}/dispatch"
}

output "service_account_email" {
  description = "The worker's runtime service account."
  value       = google_service_account.worker.email
}
