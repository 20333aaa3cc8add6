# Push sensors (automation §9): Pub/Sub delivers each message, in the standard push envelope, to the
# automation function's POST /v1/workspaces/{ws}/sensors/{id}/push?tenant={t}, with an OIDC token of
# the push account. The route skips the API Gateway: Pub/Sub calls automation's run.app URL directly,
# and Cloud Run lets the request in only with a valid token of an invoker (the push account holds
# run.invoker on automation, nothing else); automation then accepts only that account (401 otherwise).
#
# One topic and one push subscription per push sensor, rather than one topic routed by an attribute:
# a push subscription has one endpoint, so routing by attribute would still need a filtered
# subscription per sensor, and every publisher would have to set the attribute right (a typo would
# silently go nowhere). A topic per sensor lets each producer publish to that sensor only (publisher
# grants per topic), and keeps backlog, retries and dead letters per sensor. Topics and subscriptions
# cost nothing at rest.
#
# Retries: ack deadline 60 s (automation answers well within it), backoff 10..600 s, and after 10
# deliveries the message goes to one dead-letter topic, whose pull subscription keeps it a week for an
# operator (the alert "push sensor messages dead-lettered" fires). Nothing else is retained: no topic
# retention, acknowledged messages dropped, and an unacknowledged one is dead-lettered within about
# an hour, far inside the subscription's one-day retention.

locals {
  # automation's run.app URL, derived like timers_url (main.tf): known at plan time, so the gateway and
  # the push subscriptions need no output of automation (which itself needs the gateway's URL,
  # functions.tf); it is also the audience Cloud Run accepts, and the one servo.services.effects
  # derives from a URL (scheme and host).
  automation_name = "${var.name_prefix}-automation"
  automation_url  = "https://${local.automation_name}-${local.project_number}.${var.region}.run.app"

  # Keyed by "workspace/sensor" (validated). Sensor ids have no "-", so names cannot collide.
  push_sensors = {
    for key, publishers in var.push_sensors : key => {
      workspace    = split("/", key)[0]
      sensor       = split("/", key)[1]
      topic        = "${var.name_prefix}-sensor-${replace(key, "/", "-")}"
      subscription = "${var.name_prefix}-sensor-${replace(key, "/", "-")}-push"
      endpoint     = "${local.automation_url}/v1/workspaces/${split("/", key)[0]}/sensors/${split("/", key)[1]}/push?tenant=${var.default_tenant}"
      publishers   = publishers
    }
  }
  push_publishers = merge([
    for key, s in local.push_sensors : { for member in s.publishers : "${key} ${member}" => { sensor = key, member = member } }
  ]...)

  # Whose token automation's push route accepts (Cloud Run has checked the audience and signature).
  push_env = {
    SERVO_PUSH_SERVICE_ACCOUNT = google_service_account.pubsub_push.email
  }
}

# The only identity push subscriptions sign their OIDC tokens as; it may invoke automation and nothing
# else (functions.tf: automation's invokers).
resource "google_service_account" "pubsub_push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-pubsub-push"
  display_name = "Servo Pub/Sub push identity (push sensors)"
  depends_on   = [time_sleep.apis]
}

resource "google_pubsub_topic" "sensor" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; a CMEK is an organisation choice, not Servo's.
  for_each = local.push_sensors
  project  = var.project_id
  name     = each.value.topic
  labels   = merge(local.labels, { "servo-sensor" = each.value.sensor })

  depends_on = [time_sleep.apis]
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.push_publishers
  project  = var.project_id
  topic    = google_pubsub_topic.sensor[each.value.sensor].name
  role     = "roles/pubsub.publisher"
  member   = each.value.member
}

resource "google_pubsub_topic" "sensor_dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; a CMEK is an organisation choice, not Servo's.
  project = var.project_id
  name    = "${var.name_prefix}-sensor-dead-letters"
  labels  = local.labels

  depends_on = [time_sleep.apis]
}

# Pub/Sub's service agent mints the push tokens (Token Creator on the push account: iam.tf), publishes
# what fails 10 times to the dead-letter topic, and acknowledges it on the sensor's subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.sensor_dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_project_service_identity.agent["pubsub"].email}"
}

# Dead letters carry the source subscription in the CloudPubSubDeadLetterSourceSubscription attribute.
resource "google_pubsub_subscription" "sensor_dead_letter" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-sensor-dead-letters"
  topic                      = google_pubsub_topic.sensor_dead_letter.id
  labels                     = local.labels
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "sensor_push" {
  for_each                   = local.push_sensors
  project                    = var.project_id
  name                       = each.value.subscription
  topic                      = google_pubsub_topic.sensor[each.key].id
  labels                     = merge(local.labels, { "servo-sensor" = each.value.sensor })
  ack_deadline_seconds       = 60
  message_retention_duration = "86400s"
  retain_acked_messages      = false

  push_config {
    push_endpoint = each.value.endpoint
    oidc_token {
      service_account_email = google_service_account.pubsub_push.email
      audience              = local.automation_url
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.sensor_dead_letter.id
    max_delivery_attempts = 10
  }

  # The default expires a subscription after 31 days without activity: a quiet sensor would lose it.
  expiration_policy {
    ttl = ""
  }

  # Pushes before these grants exist fail (and use up deliveries): token minting, invocation, dead letters.
  depends_on = [
    google_service_account_iam_member.agent_token_creator,
    module.dispatcher,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each     = local.push_sensors
  project      = var.project_id
  subscription = google_pubsub_subscription.sensor_push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_project_service_identity.agent["pubsub"].email}"
}
