variable "project_id" {
  description = "Google Cloud project that runs ION Ops."
  type        = string
}

variable "region" {
  description = "Region of the functions, the scheduler jobs and the source bucket."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Firestore database location (multi-region nam5 or a region)."
  type        = string
  default     = "nam5"
}

variable "scheduler_time_zone_override" {
  description = "When set, every scheduler job uses this time zone instead of the one in topology.yaml."
  type        = string
  default     = ""
}

variable "function_env" {
  description = "Extra environment for every function (plain settings; secrets go in Secret Manager)."
  type        = map(string)
  default     = {}
}

variable "secret_ids" {
  description = "Secret Manager secrets created empty; add versions out of band (README: Deploy)."
  type        = list(string)
  default     = ["ion-api-keys", "request-id-secret", "slack-bot-token", "pagerduty-routing-key", "smtp-password"]
}

variable "extra_invokers" {
  description = "Entry point => IAM members that may invoke it, e.g. OTLP senders of `ingest`."
  type        = map(list(string))
  default     = {}
}

# Plain (non-secret) settings that functions need when deployed: each function lists the ones
# it needs under `settings_from` in topology.yaml. A deployed fan-out without its channel
# settings refuses to start, so these are required and checked here first.
variable "alert_channels" {
  description = "Alert channel settings of the fan-out functions (tokens and keys are secrets)."
  type = object({
    slack_channel    = string
    smtp_host        = string
    smtp_port        = number
    alert_email_from = string
    alert_email_to   = string
  })
  validation {
    condition     = can(regex("^[CG][A-Z0-9]{8,}$", var.alert_channels.slack_channel))
    error_message = "alert_channels.slack_channel must be a Slack channel id (C... or G...), not a name."
  }
  validation {
    condition     = var.alert_channels.smtp_port > 0 && var.alert_channels.smtp_port < 65536
    error_message = "alert_channels.smtp_port must be a TCP port (587 for STARTTLS, 465 for TLS)."
  }
  validation {
    condition = alltrue([
      for address in concat([var.alert_channels.alert_email_from], split(",", var.alert_channels.alert_email_to)) :
      can(regex("^[^@\\s,]+@[^@\\s,]+\\.[^@\\s,]+$", trimspace(address)))
    ])
    error_message = "alert_channels.alert_email_from and alert_email_to (comma-separated) must be email addresses."
  }
}

variable "redis_functions" {
  description = "Entry points that use Memorystore for Redis: Direct VPC egress, REDIS_URL from Secret Manager, the server CA."
  type        = list(string)
  default     = ["route"]
}

variable "redis" {
  description = "Memorystore for Redis: tier (STANDARD_HA replicates across zones) and size."
  type = object({
    tier           = string
    memory_size_gb = number
  })
  default = { tier = "STANDARD_HA", memory_size_gb = 1 }
  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.redis.tier)
    error_message = "redis.tier must be BASIC or STANDARD_HA."
  }
}

variable "functions_subnet_cidr" {
  description = "Private range of the subnetwork whose addresses the functions' Direct VPC egress uses."
  type        = string
  default     = "10.8.0.0/24"
}

variable "firestore_backup_retention" {
  description = "How long each daily Firestore backup is kept (daily backups: at most 7 days)."
  type        = string
  default     = "604800s"
  validation {
    condition     = try(tonumber(trimsuffix(var.firestore_backup_retention, "s")) <= 604800 && endswith(var.firestore_backup_retention, "s"), false)
    error_message = "firestore_backup_retention must be seconds like 604800s, at most 7 days for a daily schedule."
  }
}
