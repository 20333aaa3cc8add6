# Servo's control plane: the data bucket, one function per functions/ folder with its own service
# account, the compactor's Eventarc trigger, Cloud Tasks, the sweep schedule, secrets, API Gateway and
# monitoring. IAM follows the writer table of design §2 (iam.tf).

locals {
  artifacts      = jsondecode(file(var.functions_manifest_path))
  sources_bucket = var.sources_bucket_name
  openapi_path   = coalesce(var.openapi_path, "${path.module}/../../openapi.yaml")
  labels         = merge(var.labels, { app = "servo" })

  # Every function of design §2. A folder without an artifact fails the plan here (not at deploy).
  # automation is behind the gateway too, but deployed with the dispatchers (functions.tf).
  api_functions = ["deploy", "trigger", "runs", "cancel", "callback"]
  functions     = concat(local.api_functions, ["automation", "timers", "compactor"])
  missing       = [for fn in local.functions : fn if !contains(keys(local.artifacts), fn)]

  # timers' URL is known before it exists: a 2nd-gen function is served by the Cloud Run service of
  # the same name, whose deterministic URL is https://SERVICE-PROJECT_NUMBER.REGION.run.app. Using it
  # instead of the resource's output breaks the cycles timers -> its own URL (it schedules timers aimed
  # at itself) and compactor/timers -> gateway URL -> function URLs. It is also the OIDC audience the
  # service accepts (Cloud Run takes its run.app URL; the cloudfunctions.net URL is not an audience it
  # accepts), and the one servo.services.effects derives from SERVO_TIMERS_URL (scheme and host).
  project_number = data.google_project.this.number
  timers_name    = "${var.name_prefix}-timers"
  timers_url     = "https://${local.timers_name}-${local.project_number}.${var.region}.run.app"

  # Ledger objects are `{tenant}/{workspace}/ledger/orchestration/{ulid}.json`. Cloud Storage events
  # can only be filtered by bucket in Eventarc (path patterns apply to audit-log events), so the
  # compactor receives every finalize in the bucket and drops names that do not match this pattern.
  ledger_object_pattern = "*/*/ledger/orchestration/*"

  # Settings every function reads (servo.settings.Settings.from_env).
  common_env = {
    SERVO_STORAGE               = "gcs"
    SERVO_BUCKET                = google_storage_bucket.data.name
    SERVO_PROJECT               = var.project_id
    SERVO_LOCATION              = var.region
    SERVO_TASKS_QUEUE           = google_cloud_tasks_queue.queue["dispatch"].name
    SERVO_TIMERS_QUEUE          = google_cloud_tasks_queue.queue["timers"].name
    SERVO_SENSORS_QUEUE         = google_cloud_tasks_queue.queue["sensors"].name
    SERVO_WORKER_URL            = var.worker_url
    SERVO_TIMERS_URL            = "${local.timers_url}/v1/timers/fire"
    SERVO_TASKS_SERVICE_ACCOUNT = google_service_account.tasks.email
    SERVO_TENANT                = var.default_tenant
    # The gateway authenticates callers, not tenants: one tenant per deployment, enforced by the
    # functions (a request naming another tenant is refused). Several tenants: one deployment each.
    SERVO_SINGLE_TENANT = "1"
  }

  # The dispatchers hand workers the API root as callbackBaseUrl. Only they get it: the functions behind
  # the gateway cannot depend on the gateway's hostname without a cycle, and do not need it.
  api_url = "https://${google_api_gateway_gateway.api.default_hostname}"
  dispatcher_env = merge(local.common_env, {
    SERVO_API_URL = local.api_url
    # Only the compactor writes state/: the sweep re-kicks it instead of compacting (see timers.py).
    SERVO_SWEEP_KICKS = "1"
  })

  # Which secrets each function reads (env var -> secret and version): task tokens are minted by the
  # dispatchers (compactor, timers) with the latest key and verified by callback, which also accepts
  # the previous key during a rotation (secrets.tf); the dispatch secret is sent by the dispatchers.
  token_key = { SERVO_TOKEN_SECRET = { secret = google_secret_manager_secret.task_token.secret_id, version = "latest" } }
  previous_token_key = var.task_token_previous_version == null ? {} : {
    SERVO_TOKEN_SECRET_PREVIOUS = { secret = google_secret_manager_secret.task_token.secret_id, version = tostring(var.task_token_previous_version) }
  }
  dispatch_key = { SERVO_DISPATCH_SECRET = { secret = google_secret_manager_secret.dispatch.secret_id, version = "latest" } }
  function_secrets = {
    deploy    = {}
    trigger   = {}
    runs      = {}
    cancel    = {}
    callback  = merge(local.token_key, local.previous_token_key)
    compactor = merge(local.token_key, local.dispatch_key)
    timers    = merge(local.token_key, local.dispatch_key)

    # Manual sensor evaluations: automation mints their evaluation tokens and enqueues them with the
    # dispatch secret, like the sweep does for scheduled ones.
    automation = merge(local.token_key, local.dispatch_key)
  }

  # Functions that enqueue Cloud Tasks (dispatch envelopes and timers) and so act as the tasks SA;
  # automation enqueues sensor evaluations only (tasks.tf).
  dispatchers = ["compactor", "timers"]
}

resource "terraform_data" "artifacts_present" {
  lifecycle {
    precondition {
      condition     = length(local.missing) == 0
      error_message = "build/functions/manifest.json lacks: ${join(", ", local.missing)}. Run scripts/package_functions.py."
    }
  }
}

# ---------------------------------------------------------------------------------------------------
# Data bucket
# ---------------------------------------------------------------------------------------------------

resource "google_storage_bucket" "data" {
  #checkov:skip=CKV_GCP_62:Access logs would land in another bucket per request; Cloud Audit Logs (data access) is the supported way and is an org-level choice.
  #checkov:skip=CKV_GCP_78:Versioning stays off (see comment on the resource); immutability comes from generation preconditions and create-only IAM, recovery from soft delete.
  project                     = var.project_id
  name                        = var.bucket_name
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  # The ledger is the only copy of every run's history: Terraform refuses any plan that would delete it.
  lifecycle {
    prevent_destroy = true
  }

  depends_on = [time_sleep.apis]

  # Versioning is off on purpose: ledger, run_key and log objects are written create-if-absent
  # (ifGenerationMatch=0) by principals that hold only objectCreator on those prefixes, so they can
  # never be overwritten or deleted; the only rewritten objects are state head pointers (up to once a
  # second) and the manifests index, where noncurrent versions would pile up as cost without value —
  # the ledger alone rebuilds state. Soft delete keeps anything deleted recoverable for a while.
  versioning {
    enabled = false
  }

  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_retention_days * 86400
  }

  # logs/ objects are `{tenant}/{workspace}/logs/{run}/{task}/attempt-{n}.log`; lifecycle conditions
  # cannot match a middle path segment, and only those objects end in ".log".
  lifecycle_rule {
    condition {
      age            = var.log_retention_days
      matches_suffix = [".log"]
    }
    action {
      type = "Delete"
    }
  }

  # The timers sweep re-kicks the compactor with tiny ledger/kicks/*.kick objects (their finalize event
  # is the kick); they carry no state and are dropped after a day.
  lifecycle_rule {
    condition {
      age            = 1
      matches_suffix = [".kick"]
    }
    action {
      type = "Delete"
    }
  }
}

# ---------------------------------------------------------------------------------------------------
# Function sources: content-addressed zips built by scripts/package_functions.py and uploaded by
# scripts/upload_functions.sh into a bucket created before the first apply (infra/README.md). Terraform
# never uploads or owns them: a plan that did not upload would otherwise delete the live zips.
# ---------------------------------------------------------------------------------------------------

locals {
  source_objects = { for fn in local.functions : fn => "${fn}-${try(local.artifacts[fn].sha256, "missing")}.zip" }
}
