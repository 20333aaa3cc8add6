output "api_url" {
  description = "Servo API base URL: export SERVO_API_URL=<this>."
  value       = module.servo.api_url
}

output "api_audience" {
  description = "Audience for API ID tokens."
  value       = module.servo.api_audience
}

output "api_client_service_account" {
  description = "Impersonate this service account to mint API tokens."
  value       = module.servo.api_client_service_account
}

output "bucket_name" {
  description = "Servo data bucket."
  value       = module.servo.bucket_name
}

output "worker_url" {
  description = "Worker service URL."
  value       = module.worker.url
}

output "function_uris" {
  description = "Cloud Run URL of every function."
  value       = module.servo.function_uris
}

output "tasks_queue" {
  description = "Cloud Tasks dispatch queue."
  value       = module.servo.tasks_queue
}

output "timers_queue" {
  description = "Cloud Tasks queue of due timers."
  value       = module.servo.timers_queue
}

output "worker_service_account" {
  description = "The worker's runtime service account (grant it what your assets read and write)."
  value       = module.worker.service_account_email
}

output "sensor_topics" {
  description = "Pub/Sub topic of every push sensor, by \"workspace/sensor\"."
  value       = module.servo.sensor_topics
}

output "push_service_account" {
  description = "The account push subscriptions sign their OIDC tokens as."
  value       = module.servo.push_service_account
}

output "sensor_dead_letter_subscription" {
  description = "Pull subscription of push messages that failed 10 deliveries."
  value       = module.servo.sensor_dead_letter_subscription
}
