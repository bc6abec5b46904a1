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
