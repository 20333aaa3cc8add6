# API Gateway: one public base URL routing each path to its function (openapi.yaml is the route table).
# Operations marked x-servo-internal (the timers routes, the sensor push route) are removed before the
# document is uploaded (modules/openapi-document): only Cloud Scheduler and Cloud Tasks reach timers, and
# Pub/Sub push subscriptions the automation function's push route, directly and with OIDC.

module "openapi" {
  source = "../openapi-document"

  openapi_path = local.openapi_path
  template_vars = {
    deploy_url      = local.function_urls["deploy"]
    trigger_url     = local.function_urls["trigger"]
    runs_url        = local.function_urls["runs"]
    cancel_url      = local.function_urls["cancel"]
    callback_url    = local.function_urls["callback"]
    automation_url  = local.automation_url
    timers_url      = local.timers_url
    api_audience    = var.api_audience
    client_sa_email = google_service_account.api_client.email
  }
}

locals {
  openapi_public = module.openapi.public

  # API Gateway exists in fewer regions than the functions; the gateway may live in another region
  # than its backends (it calls them over HTTPS).
  gateway_region           = coalesce(var.gateway_region, var.region)
  gateway_region_supported = contains(var.api_gateway_regions, local.gateway_region)

  # Backends are the functions' Cloud Run URLs, which are also the ID-token audiences they accept
  # (timers and automation: their run.app URLs, known at plan time; functions.tf says why).
  function_urls = { for fn in local.api_functions : fn => module.api_function[fn].uri }
}

resource "google_api_gateway_api" "api" {
  provider     = google-beta
  project      = var.project_id
  api_id       = "${var.name_prefix}-api"
  display_name = "Servo control-plane API"
  labels       = local.labels
  depends_on   = [time_sleep.apis]
}

resource "google_api_gateway_api_config" "api" {
  provider      = google-beta
  project       = var.project_id
  api           = google_api_gateway_api.api.api_id
  api_config_id = "${var.name_prefix}-${substr(sha256(jsonencode(local.openapi_public)), 0, 12)}"
  labels        = local.labels

  openapi_documents {
    document {
      path     = "openapi.json"
      contents = base64encode(jsonencode(local.openapi_public))
    }
  }

  gateway_config {
    backend_config {
      google_service_account = google_service_account.gateway.email
    }
  }

  # Configs are immutable: a changed document gets a new id, and the gateway switches before the old one goes.
  lifecycle {
    create_before_destroy = true
  }
}

resource "google_api_gateway_gateway" "api" {
  provider     = google-beta
  project      = var.project_id
  region       = local.gateway_region
  gateway_id   = "${var.name_prefix}-gateway"
  api_config   = google_api_gateway_api_config.api.id
  display_name = "Servo gateway"
  labels       = local.labels

  lifecycle {
    precondition {
      condition     = local.gateway_region_supported
      error_message = "API Gateway has no gateway in ${local.gateway_region}: set gateway_region to one of ${join(", ", var.api_gateway_regions)}."
    }
  }
}
