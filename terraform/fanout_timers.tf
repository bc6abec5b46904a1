# Fan-out's precise group timers (functions/fanout/timers.py): one Cloud Tasks task per alert
# group and due time (group_wait, group_interval, repeat_interval) calling manage_alerts'
# POST /v1/flush/group with an OIDC token of its own service account. The minute tick
# (schedule fanout-flush) stays as their safety net. Kept in its own file and resources, apart
# from the functions' IAM in main.tf and modules/function.

resource "google_project_service" "cloudtasks" {
  service            = "cloudtasks.googleapis.com"
  disable_on_destroy = false
}

resource "google_cloud_tasks_queue" "fanout_timers" {
  name     = "fanout-timers"
  location = var.region

  # At most what manage_alerts can take at once (topology: max_instances x concurrency, 5 x 1)
  # less a request for each of its scheduler jobs (the flush tick, the digest): past it Cloud Run
  # answers 429, which spends the timers' 5 attempts in seconds; held in the queue they wait.
  rate_limits {
    max_dispatches_per_second = 50
    max_concurrent_dispatches = 3
  }

  # The flush endpoint is idempotent; a timer that fails 5 times is left to the minute tick.
  # devtools/cloudtasks_standin.py retries with the same bounds locally.
  retry_config {
    max_attempts  = 5
    min_backoff   = "1s"
    max_backoff   = "10s"
    max_doublings = 4
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  depends_on = [google_project_service.cloudtasks]
}

# The identity in the tasks' OIDC tokens: it may invoke manage_alerts and nothing else.
resource "google_service_account" "fanout_tasks" {
  account_id   = "ion-ops-fanout-tasks"
  display_name = "ION Ops fan-out timers (Cloud Tasks OIDC)"
  depends_on   = [google_project_service.apis]
}

locals {
  # The functions that arm timers: ingest (fan_out_alerts) and every flush (manage_alerts).
  fanout_timer_functions = toset(["fan_out_alerts", "manage_alerts"])
  # manage_alerts' deterministic Cloud Run URL, computed rather than read from the module: the
  # functions' own environment carries it, so a module output here would be a cycle.
  fanout_flush_origin = "https://${replace("manage_alerts", "_", "-")}-${data.google_project.this.number}.${var.region}.run.app"
  fanout_flush_url    = "${local.fanout_flush_origin}/v1/flush/group"
}

resource "google_cloud_tasks_queue_iam_member" "fanout_enqueuer" {
  for_each = local.fanout_timer_functions
  project  = var.project_id
  location = var.region
  name     = google_cloud_tasks_queue.fanout_timers.name
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${module.function[each.key].service_account}"
}

# manage_alerts' /health reads the queue (GetQueue: reachable, running); the enqueuer role cannot.
resource "google_cloud_tasks_queue_iam_member" "fanout_health_viewer" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_tasks_queue.fanout_timers.name
  role     = "roles/cloudtasks.viewer"
  member   = "serviceAccount:${module.function["manage_alerts"].service_account}"
}

# Creating a task that carries fanout_tasks' OIDC token is acting as that account.
resource "google_service_account_iam_member" "fanout_tasks_user" {
  for_each           = local.fanout_timer_functions
  service_account_id = google_service_account.fanout_tasks.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${module.function[each.key].service_account}"
}

resource "google_cloud_run_service_iam_member" "fanout_tasks_invoker" {
  location   = var.region
  service    = replace("manage_alerts", "_", "-")
  role       = "roles/run.invoker"
  member     = "serviceAccount:${google_service_account.fanout_tasks.email}"
  depends_on = [module.function]
}
