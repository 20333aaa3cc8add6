# Cloud Tasks carries dispatch envelopes to the worker and due timers to the timers function, on
# separate queues: a backlog of dispatches must never delay a retry or heartbeat timer.
#
# Dispatch queues hand the worker at most as many tasks at once as it can run (instances x
# concurrency): more would be answered 429 by Cloud Run, and every 429 uses up one of the task's
# attempts. Delivery retries follow design §6's shape (5 s doubling, capped at 300 s); a task that
# exhausts them is re-driven by the minute sweep (design §5.6), never silently lost.
#
# Sensor evaluations (automation §6.2, §9) have a queue of their own, so a dispatch backlog never
# delays them and their short retry shape (5 attempts, 5..60 s) does not apply to dispatches.

locals {
  worker_capacity = var.worker_max_instances * var.worker_concurrency
  # Retry shape shared by every queue: 5 s, 10 s, ... doubling up to the 300 s cap (2^6 x 5 s > 300 s).
  queue_retry = {
    min_backoff   = var.task_min_backoff
    max_backoff   = var.task_max_backoff
    max_doublings = 6
  }
  worker_queue = {
    per_second    = var.task_max_dispatches_per_second
    concurrent    = local.worker_capacity
    attempts      = var.task_max_attempts
    retry_seconds = 3600
    retry         = local.queue_retry
  }
  # dispatch: the default worker queue. Extra worker queues (named by assets' worker_queue) are drained
  # by the same worker service, so they share its capacity (raise worker_max_instances for the sum if
  # several are busy at once). timers: due timers (retry backoff, heartbeat and cancel-grace checks); a
  # timer that cannot be delivered for a day is still fired by the sweep, which walks due timers.
  # sensors: evaluations (tasks named s_...) to the worker's /sensor-evaluations route, with the tasks
  # account's OIDC token like dispatches. The delivery deadline (longest sensor timeout + 60 s) is the
  # task's own, set by the enqueuer; the worker's request timeout is above it. An evaluation that
  # exhausts its attempts is replaced at attempt + 1 once it expires (not_before + timeout + 60 s).
  queues = merge(
    { for name in var.extra_worker_queues : name => merge(local.worker_queue, { name = name }) },
    {
      dispatch = merge(local.worker_queue, { name = "${var.name_prefix}-dispatch" })
      sensors = {
        name          = "${var.name_prefix}-sensors"
        per_second    = var.task_max_dispatches_per_second
        concurrent    = min(local.worker_capacity, var.sensor_max_concurrent_evaluations)
        attempts      = 5
        retry_seconds = 3600
        retry         = local.sensor_queue_retry
      }
      timers = {
        name          = "${var.name_prefix}-timers"
        per_second    = var.timer_max_dispatches_per_second
        concurrent    = var.function_max_instances * var.function_concurrency
        attempts      = -1
        retry_seconds = 86400
        retry         = local.queue_retry
      }
    },
  )
  # 5 s, 10 s, 20 s, 40 s, then 60 s (automation §9): an evaluation is retried within its expiry.
  sensor_queue_retry = {
    min_backoff   = "5s"
    max_backoff   = "60s"
    max_doublings = 4
  }
  # Every queue the dispatchers enqueue on (iam.tf grants them cloudtasks.enqueuer on each).
  queue_names = [for q in google_cloud_tasks_queue.queue : q.name]
  # automation enqueues manual sensor evaluations (automation §9), on the sensors queue only.
  task_enqueuers = {
    for pair in concat(setproduct(local.dispatchers, local.queue_names), [["automation", local.queues.sensors.name]]) :
    "${pair[0]}-${pair[1]}" => pair
  }
  # Whoever enqueues a task carrying the tasks account's OIDC token needs actAs on that account.
  act_as_tasks = sort(concat(local.dispatchers, ["automation"]))
}

resource "google_cloud_tasks_queue" "queue" {
  for_each = local.queues
  project  = var.project_id
  location = var.region
  # A deleted queue name cannot be reused for 7 days; keep names stable.
  name = each.value.name

  rate_limits {
    max_dispatches_per_second = each.value.per_second
    max_concurrent_dispatches = each.value.concurrent
  }

  retry_config {
    max_attempts       = each.value.attempts
    min_backoff        = each.value.retry.min_backoff
    max_backoff        = each.value.retry.max_backoff
    max_doublings      = each.value.retry.max_doublings
    max_retry_duration = "${each.value.retry_seconds}s"
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  depends_on = [time_sleep.apis]
}

# The timer sweep: every minute, an OIDC-authenticated POST to timers (design §2).
resource "google_cloud_scheduler_job" "sweep" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-timer-sweep"
  description      = "Fire due timers, detect zombies, re-drive stuck dispatches, re-kick lost compactions"
  schedule         = var.sweep_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "300s"

  retry_config {
    # The next minute's sweep is the retry; piling retries on a slow sweep only adds load.
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${local.timers_url}/v1/timers/sweep"
    body        = base64encode("{}")
    headers = {
      "Content-Type" = "application/json"
    }
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.timers_url
    }
  }

  depends_on = [module.dispatcher]
}
