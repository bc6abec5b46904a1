# Logs as the seeds ask: operations logs kept 30 days, audit logs 90 days (var.log_retention), each
# in a log bucket of its own filled by a sink, and the log-based metrics the watchdog policies
# (monitoring.tf) read. README: Deploy, "What pages whom when ION itself is down".
#
# Cloud Logging's own buckets stay as they are: _Required keeps Admin Activity and System Event
# audit logs 400 days whatever we do, and _Default keeps everything else its default 30 days.

locals {
  # A gen2 function is the Cloud Run service of the same name (underscores become hyphens); its
  # logs are cloud_run_revision entries of that service.
  service_names   = { for name, _ in local.functions : name => replace(name, "_", "-") }
  services_filter = join(" OR ", [for name in sort(values(local.service_names)) : "\"${name}\""])
  functions_logs  = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(${local.services_filter})"
  # The scheduler's attempts at the jobs of topology.yaml (one AttemptStarted/AttemptFinished pair
  # per attempt; a failed attempt finishes at ERROR).
  scheduler_logs = "resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=(${join(" OR ", [for name in sort(keys(local.schedules)) : "\"${name}\""])})"

  # What is audit: the project's Cloud Audit Logs (admin activity, data access, system events,
  # policy denials), and the functions' own audit entries (shared/audit.py writes
  # `"audit": true` beside who did what: silences, re-drives, customer keys).
  audit_logs = "logName:\"cloudaudit.googleapis.com\" OR (${local.functions_logs} AND jsonPayload.audit=true)"
}

resource "google_logging_project_bucket_config" "operations" {
  project        = var.project_id
  location       = "global"
  bucket_id      = "ion-ops-operations"
  retention_days = var.log_retention.operations_days
  description    = "ION Ops operations logs: the functions and the scheduler's attempts, ${var.log_retention.operations_days} days."
}

resource "google_logging_project_bucket_config" "audit" {
  project        = var.project_id
  location       = "global"
  bucket_id      = "ion-ops-audit"
  retention_days = var.log_retention.audit_days
  description    = "ION Ops audit logs: Cloud Audit Logs and the functions' audit entries, ${var.log_retention.audit_days} days."
}

# A sink into a log bucket of the same project needs no IAM grant for its writer identity.
resource "google_logging_project_sink" "operations" {
  name                   = "ion-ops-operations"
  description            = "The functions' logs and the scheduler's attempts, less what goes to ion-ops-audit."
  destination            = "logging.googleapis.com/${google_logging_project_bucket_config.operations.id}"
  filter                 = "(${local.functions_logs}) OR (${local.scheduler_logs})"
  unique_writer_identity = true
  # Audit entries are kept once, in the audit bucket, for its longer retention.
  exclusions {
    name        = "audit-entries"
    description = "Kept in ion-ops-audit instead."
    filter      = local.audit_logs
  }
}

resource "google_logging_project_sink" "audit" {
  name                   = "ion-ops-audit"
  description            = "Cloud Audit Logs of the project and the functions' audit entries."
  destination            = "logging.googleapis.com/${google_logging_project_bucket_config.audit.id}"
  filter                 = local.audit_logs
  unique_writer_identity = true
}

# --- Log-based metrics ------------------------------------------------------------------------

# Errors by function: every entry at ERROR or above, labelled with the function's service.
resource "google_logging_metric" "function_errors" {
  name        = "ion_ops_function_errors"
  description = "Log entries at ERROR or above written by an ION Ops function, by function (Cloud Run service)."
  filter      = "${local.functions_logs} AND severity>=ERROR"
  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
  }
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "ION Ops function errors"
    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The function's Cloud Run service name (entry point with hyphens)."
    }
  }
}

# Failed attempts of the scheduled jobs, by job (a failed attempt's AttemptFinished is an ERROR).
resource "google_logging_metric" "scheduler_job_failures" {
  name        = "ion_ops_scheduler_job_failures"
  description = "Cloud Scheduler attempts at ION Ops jobs that failed (error status, timeout, non-2xx), by job."
  filter      = "${local.scheduler_logs} AND jsonPayload.\"@type\"=\"type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished\" AND severity>=ERROR"
  label_extractors = {
    job = "EXTRACT(resource.labels.job_id)"
  }
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "ION Ops scheduler job failures"
    labels {
      key         = "job"
      value_type  = "STRING"
      description = "The Cloud Scheduler job (a schedule of topology.yaml)."
    }
  }
}

# Points ingest_pubsub refused from topic `metrics` because only routing's catalogue metrics may
# come that way (functions/ingestion/topic_filter.py): its log line carries `refused_from_topic`.
# Anything above zero is a producer publishing what it must not, forged or misdeployed.
resource "google_logging_metric" "points_refused_from_topic" {
  name            = "ion_ops_metric_points_refused_from_topic"
  description     = "Metric points ingest_pubsub refused from topic metrics (not routing's catalogue metrics, labels or service)."
  filter          = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names["ingest_pubsub"]}\" AND jsonPayload.refused_from_topic>0"
  value_extractor = "EXTRACT(jsonPayload.refused_from_topic)"
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "ION Ops points refused from topic metrics"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 4
      scale              = 1
    }
  }
}

# One per metric batch of which points were refused for good: new series past the per-metric series
# limit (`points_refused_by_series_limit`, on every path into the store: OTLP over HTTP, topic
# `metrics`, the collector) or points topic `metrics` may not carry (`refused_from_topic`). The
# exporter is told, but it retries nothing; over Pub/Sub nobody is told. Counted by function.
resource "google_logging_metric" "metric_batches_refused" {
  name        = "ion_ops_metric_batches_refused"
  description = "Metric batches of which an ION Ops function refused points for good (series limit, or not for topic metrics), by function."
  filter      = "${local.functions_logs} AND (jsonPayload.points_refused_by_series_limit>0 OR jsonPayload.refused_from_topic>0)"
  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
  }
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "ION Ops metric batches refused"
    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The function's Cloud Run service name (entry point with hyphens)."
    }
  }
}

# One per full evaluation cycle of evaluate_alerts in which a rule failed: the completion line
# carries `errors` (rule -> error) beside `"alerts_cycle": "full"`. A rule that fails every cycle
# is blind; the cycle still answers 200, so nothing else says so.
resource "google_logging_metric" "evaluation_cycles_with_errors" {
  name        = "ion_ops_alerts_evaluation_cycles_with_errors"
  description = "Full evaluation cycles of evaluate_alerts in which at least one alert rule failed."
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"evaluate-alerts\" AND jsonPayload.alerts_cycle=\"full\" AND jsonPayload.errors:*"
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "ION Ops alert evaluation cycles with a failing rule"
  }
}

# One per full evaluation cycle of evaluate_alerts: its completion line carries
# `"alerts_cycle": "full"` (functions/alerts/main.py; tests/alerts/test_heartbeat.py checks the
# line the cycle writes matches this filter). Its absence is the "no evaluation" policy.
resource "google_logging_metric" "evaluation_cycles" {
  name        = "ion_ops_alerts_evaluation_cycles"
  description = "Completed evaluation cycles over every alert rule (evaluate_alerts, every minute)."
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"evaluate-alerts\" AND jsonPayload.alerts_cycle=\"full\""
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "ION Ops alert evaluation cycles"
  }
}
