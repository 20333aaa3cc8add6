output "name" {
  description = "Function name."
  value       = google_cloudfunctions2_function.this.name
}

output "uri" {
  description = "HTTPS URL of the function's underlying Cloud Run service."
  value       = google_cloudfunctions2_function.this.service_config[0].uri
}

output "service_name" {
  description = "Cloud Run service backing the function (for run.invoker bindings)."
  value       = google_cloudfunctions2_function.this.service_config[0].service
}
