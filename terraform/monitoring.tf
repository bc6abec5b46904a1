# The watcher watched from outside: Cloud Monitoring alert policies over ION Ops itself, notifying
# channels that do not go through ION (an email address and a PagerDuty service of var.watchdog),
# so a crash-looping evaluator, a paused or failing scheduler job, a stuck push subscription, a
# dead letter or a Firestore outage pages someone even when ION's own alerting is what broke.
# README: Deploy, "What pages whom when ION itself is down" is the runbook of every policy.

locals {
  # Every policy notifies both.
  watchdog_channels = [
    google_monitoring_notification_channel.watchdog_email.id,
    google_monitoring_notification_channel.watchdog_pagerduty.id,
  ]
  runbook = "Runbook: README.md, Deploy, \"What pages whom when ION itself is down\""
  # The seeds' queue processing target: a pushed message is acknowledged within 30 s.
  push_age_threshold_seconds = 30

  # Every push subscription: each event function's own (modules/function) and each
  # dead-letter topic's push to the dead-letter sink (main.tf). Keys are known at plan.
  watched_push_subscriptions = merge(
    { for name, fn in local.functions : name => module.function[name].push_subscription if try(fn.topic, null) != null },
    { for key, _ in local.dead_letter_pushes : key => google_pubsub_subscription.dead_letter_push[key].name },
  )
  # Every dead-letter topic's hold subscription (main.tf: kept 7 days, pulled by nobody).
  watched_dead_letter_holds = { for topic, _ in local.dead_letter_topics : topic => google_pubsub_subscription.dead_letter[topic].name }
}

# --- Notification channels (outside ION) -----------------------------------------------------

resource "google_monitoring_notification_channel" "watchdog_email" {
  display_name = "ION Ops watchdog: ${var.watchdog.email}"
  description  = "Pages about ION Ops itself, sent by Cloud Monitoring (not through ION's fan-out)."
  type         = "email"
  labels = {
    email_address = var.watchdog.email
  }
  depends_on = [google_project_service.apis]
}

# The PagerDuty integration key (Events API v2) lives in Secret Manager: added out of band like
# the functions' secrets (README: Deploy, step 1), read at apply as an ephemeral value and given
# to the channel write-only, so it is in neither the plan nor the state. No function may read it.
resource "google_secret_manager_secret" "watchdog_pagerduty" {
  secret_id = var.watchdog.pagerduty_key_secret
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

ephemeral "google_secret_manager_secret_version" "watchdog_pagerduty" {
  secret  = google_secret_manager_secret.watchdog_pagerduty.id
  version = tostring(var.watchdog.pagerduty_key_version)
}

resource "google_monitoring_notification_channel" "watchdog_pagerduty" {
  display_name = "ION Ops watchdog: PagerDuty"
  description  = "Pages about ION Ops itself, sent by Cloud Monitoring (not through ION's fan-out)."
  type         = "pagerduty"
  sensitive_labels {
    service_key_wo = ephemeral.google_secret_manager_secret_version.watchdog_pagerduty.secret_data
    # A new key: add a secret version, raise watchdog.pagerduty_key_version, apply.
    service_key_wo_version = tostring(var.watchdog.pagerduty_key_version)
  }
  depends_on = [google_project_service.apis]
}

# --- Functions: 5xx ratio, one policy per function ------------------------------------------------

resource "google_monitoring_alert_policy" "function_5xx" {
  for_each     = local.functions
  display_name = "ION Ops: ${local.service_names[each.key]} answers 5xx"
  combiner     = "OR"
  severity     = "ERROR"
  conditions {
    display_name = "${local.service_names[each.key]}: over 5% of requests 5xx for 5 min"
    condition_threshold {
      filter                  = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names[each.key]}\" AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=\"5xx\""
      denominator_filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names[each.key]}\" AND metric.type=\"run.googleapis.com/request_count\""
      comparison              = "COMPARISON_GT"
      threshold_value         = 0.05
      duration                = "300s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }
  documentation {
    subject   = "ION Ops ${local.service_names[each.key]}: more than 5% of requests answered 5xx"
    mime_type = "text/markdown"
    content   = <<-EOT
      The function `${each.key}` (Cloud Run service `${local.service_names[each.key]}`) answered more
      than 5% of its requests with a 5xx over 5 minutes, for 5 minutes. ION answers bad input with a
      4xx, so a 5xx is a bug of ours, a dependency down (Firestore, Pub/Sub, Redis: the function's
      `/health` names it) or a crash at start (a setting it refuses to start without: its logs say
      `cannot start`). Event functions answer 5xx so Pub/Sub redelivers; kept up, their messages
      reach the dead-letter topic. Errors by function: log-based metric `ion_ops_function_errors`.
      ${local.runbook}, "5xx".
    EOT
  }
  notification_channels = local.watchdog_channels
  alert_strategy {
    auto_close = "1800s"
  }
}

# --- Scheduler: failed attempts by job ----------------------------------------------------------

resource "google_monitoring_alert_policy" "scheduler_failures" {
  display_name = "ION Ops: a scheduled job keeps failing"
  combiner     = "OR"
  severity     = "ERROR"
  conditions {
    display_name = "More than 2 failed attempts of one job in 15 min"
    condition_threshold {
      filter                  = "resource.type=\"cloud_scheduler_job\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.scheduler_job_failures.name}\""
      comparison              = "COMPARISON_GT"
      threshold_value         = 2
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "900s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.job"]
      }
    }
  }
  documentation {
    subject   = "ION Ops: scheduler job failing"
    mime_type = "text/markdown"
    content   = <<-EOT
      Cloud Scheduler's attempts at one job of topology.yaml failed more than twice in 15 minutes
      (every attempt is retried twice, so a daily job that failed for good, or a minute job failing
      every minute). The job's function answered non-2xx, timed out (attempt_deadline) or refused
      the OIDC token. ION's own dead man's switch (rule `scheduled-job-overdue`) says the same
      from inside, unless the failing job is `evaluate-alerts` itself. A paused job makes no
      attempts: for `evaluate-alerts` the "no evaluation" policy and the external heartbeat page;
      for the others ION's switch does. ${local.runbook}, "Scheduler".
    EOT
  }
  notification_channels = local.watchdog_channels
  alert_strategy {
    auto_close = "3600s"
  }
}

# --- Pub/Sub: every push subscription acknowledged within 30 s -------------------------------------

resource "google_monitoring_alert_policy" "push_backlog" {
  for_each     = local.watched_push_subscriptions
  display_name = "ION Ops: push subscription ${each.key} behind"
  combiner     = "OR"
  severity     = "ERROR"
  conditions {
    display_name = "Oldest unacknowledged message older than ${local.push_age_threshold_seconds} s for 2 min"
    condition_threshold {
      filter                  = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${each.value}\" AND metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison              = "COMPARISON_GT"
      threshold_value         = local.push_age_threshold_seconds
      duration                = "120s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
  documentation {
    subject   = "ION Ops: ${each.value} is not keeping up (over ${local.push_age_threshold_seconds} s)"
    mime_type = "text/markdown"
    content   = <<-EOT
      The oldest unacknowledged message of push subscription `${each.value}` has waited more than
      ${local.push_age_threshold_seconds} s (the seeds' queue processing target) for 2 minutes: its
      function answers 5xx or times out (see its 5xx policy and logs), cannot keep up (max
      instances), or the push is refused (OIDC, ingress). For `alerts-to-fan_out_alerts` this means
      alerts are not reaching anyone. Messages that keep failing go to the dead-letter topic after
      max_delivery_attempts. ${local.runbook}, "Push backlog".
    EOT
  }
  notification_channels = local.watchdog_channels
  alert_strategy {
    auto_close = "1800s"
  }
}

# --- Dead letters: anything held on a dead-letter topic ------------------------------------------

resource "google_monitoring_alert_policy" "dead_letter_backlog" {
  for_each     = local.watched_dead_letter_holds
  display_name = "ION Ops: dead letters held for ${each.key}"
  combiner     = "OR"
  severity     = contains(["alerts", "alert-deliveries", "metric-updates"], each.key) ? "CRITICAL" : "ERROR"
  conditions {
    display_name = "Undelivered messages on ${each.value} > 0"
    condition_threshold {
      filter                  = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${each.value}\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison              = "COMPARISON_GT"
      threshold_value         = 0
      duration                = "60s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
  documentation {
    subject   = "ION Ops: dead letters of topic ${each.key}"
    mime_type = "text/markdown"
    content   = <<-EOT
      Pub/Sub gave up on a message of topic `${each.key}` (or fan-out gave up a delivery, for
      `alert-deliveries`), and the copy held on `${each.value}` (kept 7 days, pulled by nobody) is
      there. ION stores and alerts on each dead letter itself (`store_dead_letters`), but for the
      alert pipeline's topics that alert travels the pipeline that failed, so this page comes from
      outside. Inspect (`GET /v1/dead-letters`), fix the cause, re-drive
      (`POST /v1/dead-letters/{id}/redrive`), then clear the hold so this closes:
      `gcloud pubsub subscriptions seek ${each.value} --time=$(date -u +%Y-%m-%dT%H:%M:%SZ)`.
      ${local.runbook}, "Dead letters".
    EOT
  }
  notification_channels = local.watchdog_channels
  alert_strategy {
    auto_close = "604800s"
  }
}

# --- Metrics refused: points that will never be stored ---------------------------------------------

resource "google_monitoring_alert_policy" "metric_points_refused" {
  display_name = "ION Ops: metric points refused"
  combiner     = "OR"
  severity     = "WARNING"
  conditions {
    display_name = "A metric batch with points refused for good in 10 min"
    condition_threshold {
      filter                  = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.metric_batches_refused.name}\""
      comparison              = "COMPARISON_GT"
      threshold_value         = 0
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.function"]
      }
    }
  }
  documentation {
    subject   = "ION Ops: metric points refused for good"
    mime_type = "text/markdown"
    content   = <<-EOT
      An ingestion path refused points that no retry will store: new series of a metric past
      `ION_METRICS_MAX_SERIES_PER_METRIC` (the log line's `points_refused_by_series_limit` and
      `metrics_over_series_limit` name them), or points topic `metrics` may not carry
      (`refused_from_topic`: a producer publishing what it must not, forged or misdeployed).
      Rules, charts and scaling reading those metrics are missing data from now on. A label with
      unbounded values (a request id, a user) is the usual cause: drop it at the exporter; raise
      the limit only for a metric whose series are meant to grow. ${local.runbook}, "Metric points refused".
    EOT
  }
  # Data going missing, not ION down: mailed to the watchdog address, never paged at night.
  notification_channels = [google_monitoring_notification_channel.watchdog_email.id]
  alert_strategy {
    auto_close = "3600s"
  }
}

# --- A rule that keeps failing: blind, though the cycle runs ------------------------------------------

resource "google_monitoring_alert_policy" "rule_failing" {
  display_name = "ION Ops: an alert rule keeps failing"
  combiner     = "OR"
  severity     = "ERROR"
  conditions {
    display_name = "A failing rule in more than 2 of the last 5 full cycles"
    condition_threshold {
      filter                  = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.evaluation_cycles_with_errors.name}\""
      comparison              = "COMPARISON_GT"
      threshold_value         = 2
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  documentation {
    subject   = "ION Ops: an alert rule fails in most evaluation cycles"
    mime_type = "text/markdown"
    content   = <<-EOT
      `evaluate_alerts` finished its cycles, but at least one rule failed in more than 2 of the
      last 5 (the cycle's log line, `"alerts_cycle": "full"`, names each failing rule and its error
      in `errors`). That rule neither fires nor resolves while it fails: what it watches is
      unwatched. A rule reading a metric or label that no longer exists, a query the store refuses,
      or Firestore failing for that rule's state. `evaluate_alerts_on_ingest` logs the same failure
      as an error (`errors`, `"alerts_cycle": "partial"`) and acknowledges the `metric-updates`
      message; only a store or network down for now has that message redelivered (to the dead
      letters after 10 deliveries). ${local.runbook}, "Rule failing".
    EOT
  }
  notification_channels = local.watchdog_channels
  alert_strategy {
    auto_close = "1800s"
  }
}

# --- The evaluator itself: no evaluation cycle for 3 minutes ----------------------------------------

resource "google_monitoring_alert_policy" "evaluation_absent" {
  display_name = "ION Ops: no alert evaluation for 3 minutes"
  combiner     = "OR"
  severity     = "CRITICAL"
  conditions {
    display_name = "No completed evaluation cycle for 180 s"
    condition_absent {
      filter   = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.evaluation_cycles.name}\""
      duration = "180s"
      # One series across revisions and instances: a new revision is not an absence.
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  documentation {
    subject   = "ION Ops: alert evaluation stopped: ION pages nobody"
    mime_type = "text/markdown"
    content   = <<-EOT
      `evaluate_alerts` has completed no evaluation cycle (its `alerts_cycle: full` log line,
      log-based metric `ion_ops_alerts_evaluation_cycles`) for 3 minutes, where it runs every
      minute. Until it does, no alert rule is evaluated and ION's own dead man's switch over the
      scheduled jobs is blind. Causes: the `evaluate-alerts` scheduler job paused or failing
      (`gcloud scheduler jobs describe evaluate-alerts --location=${var.region}`), the function
      crash-looping or refusing to start (its logs: `cannot start`), Firestore or the query path
      failing (its 5xx policy, `/health`). The external heartbeat (watchdog.heartbeat_url) pages
      for the same stop from outside Google Cloud. ${local.runbook}, "No evaluation".
    EOT
  }
  notification_channels = local.watchdog_channels
  alert_strategy {
    auto_close = "1800s"
  }
}
