# Servo's control plane: the data bucket, one function per functions/ folder with its own service
# account, the compactor's Eventarc trigger, Cloud Tasks, the sweep schedule, secrets, API Gateway and
# monitoring. IAM follows the writer table of design §2 (iam.tf).

locals {
  artifacts      = jsondecode(file(var.functions_manifest_path))
  artifacts_dir  = dirname(var.functions_manifest_path)
  sources_bucket = coalesce(var.sources_bucket_name, "${var.bucket_name}-sources")
  openapi_path   = coalesce(var.openapi_path, "${path.module}/../../openapi.yaml")
  labels         = merge(var.labels, { app = "servo" })

  # Every function of design §2. A folder without an artifact fails the plan here (not at deploy).
  api_functions = ["deploy", "trigger", "runs", "cancel", "callback", "automation"]
  functions     = concat(local.api_functions, ["timers", "compactor"])
  missing       = [for fn in local.functions : fn if !contains(keys(local.artifacts), fn)]

  # Deterministic function URLs (https://REGION-PROJECT.cloudfunctions.net/NAME). Using them instead
  # of the resources' outputs breaks the cycles timers -> its own URL (it schedules timers aimed at
  # itself) and compactor/timers -> gateway URL -> function URLs.
  function_base = "https://${var.region}-${var.project_id}.cloudfunctions.net"
  timers_url    = "${local.function_base}/${var.name_prefix}-timers"

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
    SERVO_TASKS_QUEUE           = google_cloud_tasks_queue.dispatch.name
    SERVO_WORKER_URL            = var.worker_url
    SERVO_TIMERS_URL            = "${local.timers_url}/v1/timers/fire"
    SERVO_TASKS_SERVICE_ACCOUNT = google_service_account.tasks.email
    SERVO_TENANT                = var.default_tenant
  }

  # The dispatchers hand workers the API root as callbackBaseUrl. Only they get it: the functions behind
  # the gateway cannot depend on the gateway's hostname without a cycle, and do not need it.
  dispatcher_env = merge(local.common_env, {
    SERVO_API_URL = "https://${google_api_gateway_gateway.api.default_hostname}"
    # Only the compactor writes state/: the sweep re-kicks it instead of compacting (see timers.py).
    SERVO_SWEEP_KICKS = "1"
  })

  # Which secrets each function reads: task tokens are minted by the dispatchers (compactor, timers)
  # and verified by callback; the dispatch secret is sent by the dispatchers only.
  function_secrets = {
    deploy    = {}
    trigger   = {}
    runs      = {}
    cancel    = {}
    callback  = { SERVO_TOKEN_SECRET = google_secret_manager_secret.task_token.secret_id }
    compactor = { SERVO_TOKEN_SECRET = google_secret_manager_secret.task_token.secret_id, SERVO_DISPATCH_SECRET = google_secret_manager_secret.dispatch.secret_id }
    timers    = { SERVO_TOKEN_SECRET = google_secret_manager_secret.task_token.secret_id, SERVO_DISPATCH_SECRET = google_secret_manager_secret.dispatch.secret_id }

    # Schedules: reads and writes the ledger and run_keys/ like trigger; no secret yet.
    automation = {}
  }

  # Functions that enqueue Cloud Tasks (dispatch envelopes and timers) and so act as the tasks SA.
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
# Function sources: content-addressed zips built by scripts/package_functions.py
# ---------------------------------------------------------------------------------------------------

resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_62:Build artifacts only; uploads are recorded by Cloud Audit Logs.
  #checkov:skip=CKV_GCP_78:Objects are content-addressed (<fn>-<sha256>.zip) and never overwritten, so versions would add nothing.
  project                     = var.project_id
  name                        = local.sources_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels
}

resource "google_storage_bucket_object" "source" {
  for_each = var.upload_sources ? toset(local.functions) : toset([])
  bucket   = google_storage_bucket.sources.name
  name     = "${each.value}-${local.artifacts[each.value].sha256}.zip"
  source   = "${local.artifacts_dir}/${local.artifacts[each.value].zip}"
}

locals {
  source_objects = { for fn in local.functions : fn => "${fn}-${local.artifacts[fn].sha256}.zip" }
}
