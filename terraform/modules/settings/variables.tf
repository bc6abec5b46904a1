# The root module's variables of the same names, passed through unchanged (validated there).
variable "project_id" { type = string }
variable "region" { type = string }

variable "functions" {
  description = "topology.yaml's functions."
  type        = any
}

variable "function_env" {
  type    = map(string)
  default = {}
}

variable "redis_functions" {
  type = list(string)
}

variable "redis_url_secret" {
  description = "Secret Manager secret id holding REDIS_URL."
  type        = string
}

variable "alert_channels" {
  type = object({
    slack_channel    = string
    smtp_host        = string
    smtp_port        = number
    smtp_user        = string
    alert_email_from = string
    alert_email_to   = string
  })
}

variable "public_access" {
  description = "The load balancer's domain (links are https://<domain>/...) and who may pass IAP."
  type = object({
    domain  = string
    members = list(string)
  })
}

variable "reports" {
  type = object({
    mail_from  = string
    time_zone  = string
    recipients = object({ engineering = list(string), leadership = list(string), support = list(string), operations = list(string), customer_success = list(string), finance = list(string) })
  })
}

variable "cost" {
  type = object({
    billing_export_table    = string
    billing_export_location = string
    billing_account         = string
    budget_amount           = number
    target_amount           = number
    currency                = string
  })
}

variable "scaling_targets" {
  type = list(object({
    project         = string
    region          = string
    service         = string
    service_account = string
  }))
}

variable "cloud_sql_instances" {
  type = list(string)
}

variable "watchdog" {
  description = "Who is paged when ION itself is down; the functions take only heartbeat_url."
  type = object({
    email                 = string
    heartbeat_url         = string
    pagerduty_key_secret  = string
    pagerduty_key_version = number
  })
}

variable "roles" {
  description = "Who holds each role: global and per-function viewer, operator and admin lists (validated in the root)."
  type = object({
    global    = object({ viewer = list(string), operator = list(string), admin = list(string) })
    functions = map(object({ viewer = list(string), operator = list(string), admin = list(string) }))
  })
}

variable "resources" {
  description = "Settings that are attributes of resources the root module creates (queue, accounts, Redis CA)."
  type        = map(string)
}
