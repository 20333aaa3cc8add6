output "api_url" {
  description = "Base URL of the Servo API (SERVO_API_URL for the CLI and the worker callbacks)."
  value       = "https://${google_api_gateway_gateway.api.default_hostname}"
}

output "api_audience" {
  description = "Audience to request in ID tokens for the API."
  value       = var.api_audience
}

output "api_client_service_account" {
  description = "Service account whose ID tokens the API accepts; impersonate it to call the API."
  value       = google_service_account.api_client.email
}

output "bucket_name" {
  description = "Servo data bucket (SERVO_BUCKET)."
  value       = google_storage_bucket.data.name
}

output "tasks_queue" {
  description = "Cloud Tasks dispatch queue (SERVO_TASKS_QUEUE)."
  value       = google_cloud_tasks_queue.queue["dispatch"].name
}

output "timers_queue" {
  description = "Cloud Tasks queue of due timers (SERVO_TIMERS_QUEUE)."
  value       = google_cloud_tasks_queue.queue["timers"].name
}

output "tasks_service_account" {
  description = "Service account Cloud Tasks signs OIDC tokens with; grant it run.invoker on workers."
  value       = google_service_account.tasks.email
}

output "dispatch_secret_id" {
  description = "Secret Manager secret holding the dispatch shared secret (the worker reads it)."
  value       = google_secret_manager_secret.dispatch.secret_id
  # The worker mounts "latest": it must not be deployed before a version exists.
  depends_on = [google_secret_manager_secret_version.dispatch]
}

output "function_uris" {
  description = "Cloud Run URL of every function."
  value       = { for fn, m in local.function_modules : fn => m.uri }
}

output "function_service_accounts" {
  description = "Runtime service account of every function."
  value       = { for fn, sa in google_service_account.function : fn => sa.email }
}

output "timers_url" {
  description = "The timers function's run.app URL: the OIDC audience Cloud Scheduler and Cloud Tasks sign for."
  value       = local.timers_url
}

output "ledger_object_pattern" {
  description = "Names the compactor folds; other finalize events in the bucket are ignored by the compactor."
  value       = local.ledger_object_pattern
}

output "sensors_queue" {
  description = "Cloud Tasks queue of sensor evaluations (SERVO_SENSORS_QUEUE)."
  value       = google_cloud_tasks_queue.queue["sensors"].name
}

output "push_service_account" {
  description = "The account push subscriptions sign OIDC tokens as; automation's push route accepts no other (SERVO_PUSH_SERVICE_ACCOUNT)."
  value       = google_service_account.pubsub_push.email
}

output "push_audience" {
  description = "automation's run.app URL: the OIDC audience of push tokens (SERVO_PUSH_AUDIENCE) and the root of the push endpoints."
  value       = local.automation_url
}

output "sensor_topics" {
  description = "Pub/Sub topic of every push sensor, by \"workspace/sensor\": publish the sensor's messages here."
  value       = { for key, topic in google_pubsub_topic.sensor : key => topic.id }
}

output "sensor_dead_letter_subscription" {
  description = "Pull subscription holding push messages that failed 10 deliveries (kept 7 days)."
  value       = google_pubsub_subscription.sensor_dead_letter.id
}
