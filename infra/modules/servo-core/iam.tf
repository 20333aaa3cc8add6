# Least privilege per the writer table (design §2).
#
# Reads: every function reads across prefixes (the read model, manifests, run_keys, logs), and
# objects.list is checked against the bucket, not an object name, so a name condition cannot scope it;
# each function therefore gets objectViewer on the data bucket, unconditionally.
#
# Writes: GCS IAM cannot grant a prefix except through IAM Conditions on resource.name. Servo names
# are `{tenant}/{workspace}/<area>/...` with a variable tenant and workspace, so a literal startsWith
# cannot express them; extract() with a template does: the condition holds when the name has the shape
# `objects/<anything>/<area>/...`. Tenant and workspace ids never contain "/" (validated at the edge),
# so for Servo's own names the matched area is the third path segment.
# Residual risk, accepted and documented: a principal could create a name whose *later* segment is
# its area (e.g. `t/w/state/x/ledger/y`); objectCreator cannot overwrite or delete, so existing state
# objects and head pointers stay out of reach — only the compactor holds overwrite on state/.
#
# Roles: objectCreator (create only: no overwrite, no delete) for append-only areas written
# create-if-absent; objectUser (create, overwrite, delete) only where a pointer is compare-and-swapped:
# state/ (compactor: head pointer) and manifests/_index.json (deploy: the current-manifest index).

locals {
  object_prefix = "projects/_/buckets/${google_storage_bucket.data.name}/objects"

  # deploy creates manifests and their idempotency records, and compare-and-swaps one object: the
  # index. `state/orchestration/manifests/` names also hold a "/manifests/" segment, so every grant
  # but the compactor's also excludes any name with a "/state/" segment (outside_state below).
  write_grants = {
    deploy_manifests = { fn = "deploy", area = "manifests", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    deploy_index     = { fn = "deploy", area = "manifests", role = "roles/storage.objectUser", scoped = true, suffix = "_index.json" }
    deploy_registry  = { fn = "deploy", area = "_servo/workspaces", role = "roles/storage.objectCreator", scoped = false, suffix = "" }
    trigger_run_keys = { fn = "trigger", area = "run_keys", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    trigger_creation = { fn = "trigger", area = "creations", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    trigger_ledger   = { fn = "trigger", area = "ledger", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    cancel_ledger    = { fn = "cancel", area = "ledger", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    callback_claims  = { fn = "callback", area = "attempt_claims", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    callback_ledger  = { fn = "callback", area = "ledger", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    callback_logs    = { fn = "callback", area = "logs", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    compactor_state  = { fn = "compactor", area = "state", role = "roles/storage.objectUser", scoped = true, suffix = "" }
    compactor_ledger = { fn = "compactor", area = "ledger", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    timers_ledger    = { fn = "timers", area = "ledger", role = "roles/storage.objectCreator", scoped = true, suffix = "" }

    # Schedules (issue 18): deploy records definition events, automation status events, the sweep ticks
    # and their runs; all three refresh the schedule projection (automation/, its head is swapped by CAS).
    deploy_ledger        = { fn = "deploy", area = "ledger", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    deploy_schedules     = { fn = "deploy", area = "automation", role = "roles/storage.objectUser", scoped = true, suffix = "" }
    automation_ledger    = { fn = "automation", area = "ledger", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    automation_schedules = { fn = "automation", area = "automation", role = "roles/storage.objectUser", scoped = true, suffix = "" }
    timers_run_keys      = { fn = "timers", area = "run_keys", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    timers_creation      = { fn = "timers", area = "creations", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    timers_schedules     = { fn = "timers", area = "automation", role = "roles/storage.objectUser", scoped = true, suffix = "" }

    # Sensors (issue 19): the result callback records a result in ledger/ only (with its log, and its
    # one-report claim in attempt_claims/); the compactor publishes the sensor projection and submits
    # an applied evaluation's run requests after commit (its backfill grants below), and requests the
    # next evaluation (ledger/, then a task on the sensors queue, as a dispatcher); the sweep repairs.

    # Backfills (issue 20): automation reserves a create's Idempotency-Key under requests/ and submits
    # the first chunks' run requests itself (run_keys/, creations/), as the sweep does for the rest.
    automation_requests = { fn = "automation", area = "requests", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    automation_run_keys = { fn = "automation", area = "run_keys", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    automation_creation = { fn = "automation", area = "creations", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    # After commit the compactor plans a backfill's next chunk, once a backfill run ended, and submits
    # the run requests of the sensor results it folded (the sensor projection is under automation/).
    compactor_backfills = { fn = "compactor", area = "automation", role = "roles/storage.objectUser", scoped = true, suffix = "" }
    compactor_run_keys  = { fn = "compactor", area = "run_keys", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
    compactor_creation  = { fn = "compactor", area = "creations", role = "roles/storage.objectCreator", scoped = true, suffix = "" }
  }

  outside_state = "resource.name.extract(\"${local.object_prefix}/{scope}/state/\") == \"\""

  # One CEL expression per grant (IAM Conditions accept startsWith, endsWith and extract on names).
  write_conditions = {
    for key, g in local.write_grants : key => join(" && ", compact([
      g.scoped
      ? "resource.name.extract(\"${local.object_prefix}/{scope}/${g.area}/\") != \"\""
      : "resource.name.startsWith(\"${local.object_prefix}/${g.area}/\")",
      g.suffix == "" ? "" : "resource.name.endsWith(\"/${g.area}/${g.suffix}\")",
      g.area == "state" ? "" : local.outside_state,
    ]))
  }
}

resource "google_storage_bucket_iam_member" "reader" {
  for_each = toset(local.functions)
  bucket   = google_storage_bucket.data.name
  role     = "roles/storage.objectViewer"
  member   = "serviceAccount:${google_service_account.function[each.value].email}"
}

resource "google_storage_bucket_iam_member" "writer" {
  for_each = local.write_grants
  bucket   = google_storage_bucket.data.name
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.function[each.value.fn].email}"

  condition {
    title       = "servo-${replace(each.key, "_", "-")}"
    description = "${each.value.fn} writes ${each.value.area}/${each.value.suffix} only (design §2 writer table)"
    expression  = local.write_conditions[each.key]
  }
}

# ---------------------------------------------------------------------------------------------------
# Service identities that are not functions
# ---------------------------------------------------------------------------------------------------

# Cloud Tasks signs OIDC tokens as this account for dispatches (worker) and timers (timers function).
resource "google_service_account" "tasks" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-tasks"
  display_name = "Servo Cloud Tasks OIDC identity"
  depends_on   = [time_sleep.apis]
}

# The dispatchers (and automation, for manual sensor evaluations) create tasks that carry the tasks
# account's OIDC token, which needs actAs on it.
resource "google_service_account_iam_member" "dispatchers_act_as_tasks" {
  for_each           = toset(local.act_as_tasks)
  service_account_id = google_service_account.tasks.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.function[each.value].email}"
}

resource "google_cloud_tasks_queue_iam_member" "dispatchers_enqueue" {
  for_each = local.task_enqueuers
  project  = var.project_id
  location = var.region
  name     = each.value[1]
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${google_service_account.function[each.value[0]].email}"

  depends_on = [google_cloud_tasks_queue.queue]
}

# Google's own service agents mint the OIDC tokens Servo's identities carry: Cloud Tasks' as the tasks
# account (dispatches, timers, sensor evaluations), Pub/Sub's as the push account (push sensors,
# sensors.tf). Minting needs Token Creator on that account, and only there.
locals {
  token_minting_agents = {
    cloudtasks = { service = "cloudtasks.googleapis.com", account = google_service_account.tasks.name }
    pubsub     = { service = "pubsub.googleapis.com", account = google_service_account.pubsub_push.name }
  }
}

resource "google_service_account_iam_member" "agent_token_creator" {
  for_each           = local.token_minting_agents
  service_account_id = each.value.account
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_project_service_identity.agent[each.key].email}"
}

moved {
  from = google_service_account_iam_member.tasks_agent_token_creator
  to   = google_service_account_iam_member.agent_token_creator["cloudtasks"]
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "Servo Cloud Scheduler OIDC identity (timer sweep)"
}

resource "google_service_account" "eventarc" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-eventarc"
  display_name = "Servo Eventarc trigger identity (compactor)"
}

resource "google_project_iam_member" "eventarc_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.eventarc.email}"
}

# Eventarc's own service agent (created when the API is enabled) and the grants above propagate for
# a few minutes; a trigger created before fails with "Permission denied while using the Eventarc
# Service Agent" (a known first-apply failure). The compactor waits for this.
resource "time_sleep" "eventarc_iam" {
  create_duration = var.propagation_wait
  depends_on      = [google_project_iam_member.eventarc_receiver, google_project_iam_member.gcs_pubsub_publisher]
}

# Cloud Storage publishes finalize events to Pub/Sub for Eventarc; its service agent needs the publisher role.
data "google_storage_project_service_account" "gcs" {
  project    = var.project_id
  depends_on = [time_sleep.apis]
}

resource "google_project_iam_member" "gcs_pubsub_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# A service agent exists only once its API has been used; this makes Google create it now, so the
# Token Creator grant above does not fail on an empty project.
resource "google_project_service_identity" "agent" {
  for_each   = local.token_minting_agents
  provider   = google-beta
  project    = var.project_id
  service    = each.value.service
  depends_on = [time_sleep.apis]
}

moved {
  from = google_project_service_identity.cloudtasks
  to   = google_project_service_identity.agent["cloudtasks"]
}

data "google_project" "this" {
  project_id = var.project_id
}

# API Gateway calls the public functions as this account (x-google-backend uses its ID token).
resource "google_service_account" "gateway" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-gateway"
  display_name = "Servo API Gateway backend identity"
}

# Callers of the control-plane API present an ID token of this account; holding Token Creator on it is
# the authorization (see securityDefinitions in openapi.yaml).
resource "google_service_account" "api_client" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-api-client"
  display_name = "Servo API client identity (CLI, CI)"
}

resource "google_service_account_iam_member" "api_client_token_creator" {
  for_each           = toset(var.api_client_members)
  service_account_id = google_service_account.api_client.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = each.value
}
