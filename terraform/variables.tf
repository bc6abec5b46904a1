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
  # Cloud Scheduler refuses a zone that is not IANA's at apply, after the functions are deployed.
  validation {
    condition     = var.scheduler_time_zone_override == "" || can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)+$|^UTC$", var.scheduler_time_zone_override))
    error_message = "scheduler_time_zone_override must be \"\" or an IANA time zone such as Etc/UTC or America/New_York."
  }
}

variable "function_env" {
  description = "Extra environment for every function (plain settings; secrets go in Secret Manager)."
  type        = map(string)
  default     = {}
}

variable "secret_ids" {
  description = "Secret Manager secrets created empty; add versions out of band (README: Deploy)."
  type        = list(string)
  default     = ["ion-api-keys", "request-id-secret", "customer-key-secret", "slack-bot-token", "pagerduty-routing-key", "smtp-password", "slack-signing-secret", "pagerduty-webhook-secret"]
  # A function naming a secret that is not created fails its deploy midway through the apply.
  validation {
    condition = alltrue([
      for fn in values(yamldecode(file("${path.module}/../topology.yaml")).functions) :
      alltrue([for secret in values(try(fn.secrets, {})) : contains(var.secret_ids, secret)])
    ])
    error_message = "secret_ids must include every secret the functions of topology.yaml read (their `secrets:`)."
  }
}

variable "extra_invokers" {
  description = "Entry point => IAM members that may invoke it, e.g. OTLP senders of `ingest`."
  type        = map(list(string))
  default     = {}
  # A misspelt entry point would grant nothing, silently.
  validation {
    condition = alltrue([
      for name in keys(var.extra_invokers) :
      contains(keys(yamldecode(file("${path.module}/../topology.yaml")).functions), name)
    ])
    error_message = "extra_invokers keys must be entry points of topology.yaml (ingest, manage_alerts, ...)."
  }
  # run.invoker for allUsers would open a private function to the internet; `public: true` in
  # topology.yaml is the only way to do that.
  validation {
    condition = alltrue([
      for member in flatten(values(var.extra_invokers)) :
      can(regex("^(user|group|serviceAccount):[^@\\s:,]+@[^@\\s,]+\\.[^@\\s,]+$", member)) ||
      can(regex("^domain:([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", member))
    ])
    error_message = "Each of extra_invokers' members must be user:, group:, serviceAccount:<email> or domain:<DNS name>, never allUsers or allAuthenticatedUsers."
  }
}

# Where ingest's OTLP senders may reach it from (README: Deploy, "Who may call what"). Whatever
# the ingress, a sender still needs run.invoker (extra_invokers) and a Google-signed token.
variable "ingest_ingress" {
  description = "ingest's ingress: ALLOW_INTERNAL_ONLY (same project or a Shared VPC), ALLOW_INTERNAL_AND_GCLB (also through a Google Cloud load balancer), ALLOW_ALL (senders outside Google Cloud)."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"
  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"], var.ingest_ingress)
    error_message = "ingest_ingress must be ALLOW_INTERNAL_ONLY, ALLOW_INTERNAL_AND_GCLB or ALLOW_ALL (IAM invocation is required in every case)."
  }
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
    smtp_user        = optional(string, "") # the login for the smtp-password secret; "" sends without one
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

variable "public_access" {
  description = "The load balancer's DNS name (e.g. ops.example.com; create an A record to the output public_ip) and who may open it through IAP: group:, user: or domain: members."
  type = object({
    domain  = string
    members = list(string)
  })
  validation {
    condition     = length(var.public_access.domain) <= 253 && can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.public_access.domain))
    error_message = "public_access.domain must be a lower-case DNS name such as ops.example.com (no scheme, port, path or trailing dot)."
  }
  validation {
    condition     = length(var.public_access.members) > 0
    error_message = "public_access.members must name at least one group:, user: or domain: member."
  }
  validation {
    condition = alltrue([
      for member in var.public_access.members :
      contains(["allusers", "allauthenticatedusers"], lower(member)) ||
      can(regex("^(user|group):[^@\\s:]+@[^@\\s]+\\.[^@\\s]+$", member)) ||
      can(regex("^domain:([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", member))
    ])
    error_message = "Each of public_access.members must be group:<email>, user:<email> or domain:<DNS name>."
  }
  validation {
    condition     = !anytrue([for member in var.public_access.members : contains(["allusers", "allauthenticatedusers"], lower(member))])
    error_message = "public_access.members must not be allUsers or allAuthenticatedUsers: IAP lets in named people only."
  }
}

variable "redis_functions" {
  description = "Entry points that use Memorystore for Redis: Direct VPC egress, REDIS_URL from Secret Manager, the server CA."
  type        = list(string)
  default     = ["route", "score_health"]
  # A misspelt entry point would leave the intended function without Redis, silently.
  validation {
    condition = alltrue([
      for name in var.redis_functions :
      contains(keys(yamldecode(file("${path.module}/../topology.yaml")).functions), name)
    ])
    error_message = "redis_functions must be entry points of topology.yaml (route, score_health, ...)."
  }
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
  validation {
    condition     = var.redis.memory_size_gb >= 1 && var.redis.memory_size_gb <= 300 && floor(var.redis.memory_size_gb) == var.redis.memory_size_gb
    error_message = "redis.memory_size_gb must be a whole number of GB from 1 to 300 (Memorystore's range)."
  }
}

variable "functions_subnet_cidr" {
  description = "Private range of the subnetwork whose addresses the functions' Direct VPC egress uses."
  type        = string
  default     = "10.8.0.0/24"
  # Direct VPC egress needs a subnet of at least /26; a bad range fails the apply mid-way.
  validation {
    condition     = can(cidrnetmask(var.functions_subnet_cidr)) && try(tonumber(split("/", var.functions_subnet_cidr)[1]) <= 26, false)
    error_message = "functions_subnet_cidr must be an IPv4 range like 10.8.0.0/24, /26 or larger (Direct VPC egress)."
  }
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

# --- Reports ----------------------------------------------------------------------------------

variable "reports" {
  description = "Weekly reports: the sender, the zone of a week, and the recipients of each audience (functions/reports/audiences.yaml). Mail goes through alert_channels' SMTP relay."
  type = object({
    mail_from = string
    time_zone = optional(string, "America/New_York")
    recipients = object({
      engineering      = list(string)
      leadership       = list(string)
      support          = list(string)
      operations       = list(string) # the daily operations summary at 17:00
      customer_success = list(string)
      finance          = list(string)
    })
  })
  validation {
    condition = alltrue([
      for address in concat([var.reports.mail_from], flatten(values(var.reports.recipients))) :
      can(regex("^[^@\\s,]+@[^@\\s,]+\\.[^@\\s,]+$", address))
    ])
    error_message = "reports.mail_from and every recipient must be an email address."
  }
  validation {
    condition     = alltrue([for audience in values(var.reports.recipients) : length(audience) > 0])
    error_message = "reports.recipients needs at least one address per audience: a scheduled report nobody receives is refused at start."
  }
  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)+$|^UTC$", var.reports.time_zone))
    error_message = "reports.time_zone must be an IANA time zone such as America/New_York."
  }
}

# --- Cost -------------------------------------------------------------------------------------

variable "cost" {
  description = "The Cloud Billing export in BigQuery, the billing account, and the monthly budget and target (GCP Budgets is created from these)."
  type = object({
    billing_export_table    = string # project.dataset.gcp_billing_export_v1_XXXXXX
    billing_export_location = optional(string, "US")
    billing_account         = string # 012345-6789AB-CDEF01
    budget_amount           = optional(number, 3000)
    target_amount           = optional(number, 1800)
    currency                = optional(string, "USD")
    budget_thresholds       = optional(list(number), [0.5, 0.9, 1.0])
    create_budget           = optional(bool, true)
  })
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]\\.[A-Za-z0-9_]+\\.[A-Za-z0-9_]+$", var.cost.billing_export_table))
    error_message = "cost.billing_export_table must be project.dataset.table (the Cloud Billing export, e.g. my-billing.billing_export.gcp_billing_export_v1_0123AB_4567CD_89EF01)."
  }
  validation {
    condition     = can(regex("^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$", var.cost.billing_account))
    error_message = "cost.billing_account must be a billing account id like 012345-6789AB-CDEF01."
  }
  validation {
    condition     = var.cost.target_amount > 0 && var.cost.budget_amount >= var.cost.target_amount
    error_message = "cost.target_amount must be positive and at most cost.budget_amount."
  }
  validation {
    # The GCP budget is created in whole units, and its notifications are matched to the
    # function's ION_COST_BUDGET by amount: a fraction would make two budgets of one.
    condition     = floor(var.cost.budget_amount) == var.cost.budget_amount
    error_message = "cost.budget_amount must be a whole number of currency units, like 3000."
  }
  validation {
    condition     = can(regex("^[A-Z]{3}$", var.cost.currency))
    error_message = "cost.currency must be an ISO 4217 code like USD, the billing account's currency."
  }
  validation {
    condition     = alltrue([for t in var.cost.budget_thresholds : t > 0 && t <= 2])
    error_message = "cost.budget_thresholds are fractions of the budget, each in (0, 2]."
  }
  validation {
    condition     = contains(["US", "EU"], var.cost.billing_export_location) || can(regex("^[a-z]+-[a-z]+[0-9]$", var.cost.billing_export_location))
    error_message = "cost.billing_export_location must be the export dataset's BigQuery location: US, EU or a region like europe-west1."
  }
}

# --- Scaling ----------------------------------------------------------------------------------

variable "scaling_targets" {
  description = "The Cloud Run services adjust_scaling sets min/max instances of, one per region of functions/scaling/rules.yaml, all in one project; service_account is each service's runtime account (a service update acts as it)."
  type = list(object({
    project         = string
    region          = string
    service         = string
    service_account = string
  }))
  validation {
    condition     = length(var.scaling_targets) > 0
    error_message = "scaling_targets needs at least one service."
  }
  validation {
    condition = alltrue([for t in var.scaling_targets :
      can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", t.project))
      && can(regex("^[a-z]+-[a-z]+[0-9]$", t.region))
      && can(regex("^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$", t.service))
      && can(regex("^[^@\\s]+@[^@\\s]+\\.iam\\.gserviceaccount\\.com$|^[0-9]+-compute@developer\\.gserviceaccount\\.com$", t.service_account))
    ])
    error_message = "scaling_targets: project must be a project id, region a region (us-central1), service a Cloud Run service name, service_account the service's runtime service account email."
  }
  validation {
    condition     = length(distinct([for t in var.scaling_targets : t.region])) == length(var.scaling_targets)
    error_message = "scaling_targets: one service per region (the rules in functions/scaling/rules.yaml are per region)."
  }
  validation {
    condition     = length(distinct([for t in var.scaling_targets : t.project])) == 1
    error_message = "scaling_targets must all be in one project (the collector reads their metrics from it)."
  }
  validation {
    condition = alltrue([for t in var.scaling_targets :
      contains(keys(yamldecode(file("${path.module}/../functions/scaling/rules.yaml")).regions), t.region)
    ])
    error_message = "scaling_targets: every region must have rules in functions/scaling/rules.yaml."
  }
}

variable "cloud_sql_instances" {
  description = "Cloud SQL instances (in the scaling targets' project) whose metrics the collector copies, e.g. replication lag for the database alert rules."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for name in var.cloud_sql_instances : can(regex("^[a-z][a-z0-9-]{0,96}$", name))])
    error_message = "cloud_sql_instances are instance names (not connection names)."
  }
}

# --- Watchdog: who is paged when ION itself is down (monitoring.tf) -----------------------------

variable "watchdog" {
  description = "Who Cloud Monitoring pages about ION Ops itself, not through ION: an email address, the Secret Manager secret holding the PagerDuty integration key (and its version), and the external dead man's switch URL every evaluation cycle pings."
  type = object({
    email                 = string
    heartbeat_url         = string
    pagerduty_key_secret  = optional(string, "watchdog-pagerduty-key")
    pagerduty_key_version = optional(number, 1)
  })
  validation {
    condition     = can(regex("^[^@\\s,]+@[^@\\s,]+\\.[^@\\s,]+$", var.watchdog.email))
    error_message = "watchdog.email must be one email address (a person or a list that is not behind ION)."
  }
  validation {
    condition = (
      can(regex("^https://[^/\\s?#]+(/[^\\s]*)?$", var.watchdog.heartbeat_url))
      && !can(regex("^https://([^/@]*@)?(localhost|127\\.[0-9.]+|0\\.0\\.0\\.0|\\[::1\\])(:[0-9]+)?(/|$)", var.watchdog.heartbeat_url))
      && !can(regex("^https://([^/@]*@)?[^/]*\\.(run\\.app|cloudfunctions\\.net)(:[0-9]+)?(/|$)", var.watchdog.heartbeat_url))
    )
    error_message = "watchdog.heartbeat_url must be an https:// URL of a dead man's switch outside ION (healthchecks.io, Cronitor, a PagerDuty heartbeat), not loopback or a function's own URL."
  }
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.watchdog.pagerduty_key_secret))
    error_message = "watchdog.pagerduty_key_secret must be a Secret Manager secret id (letters, digits, - and _)."
  }
  validation {
    condition     = var.watchdog.pagerduty_key_version >= 1 && floor(var.watchdog.pagerduty_key_version) == var.watchdog.pagerduty_key_version
    error_message = "watchdog.pagerduty_key_version must be a secret version number (1, 2, ...); raise it to rotate the key."
  }
}

variable "log_retention" {
  description = "Days the operations logs (the functions, the scheduler's attempts) and the audit logs (Cloud Audit Logs, the functions' audit entries) are kept in their log buckets (logging.tf)."
  type = object({
    operations_days = optional(number, 30)
    audit_days      = optional(number, 90)
  })
  default = {}
  validation {
    condition = alltrue([
      for days in [var.log_retention.operations_days, var.log_retention.audit_days] :
      days >= 1 && days <= 3650 && floor(days) == days
    ])
    error_message = "log_retention days must be whole numbers from 1 to 3650 (Cloud Logging's range)."
  }
  validation {
    condition     = var.log_retention.audit_days >= 90
    error_message = "log_retention.audit_days must be at least 90: the seeds keep audit logs 90 days."
  }
}

# --- Roles: who may do what through the functions' APIs (shared/roles.py) -----------------------

variable "roles" {
  description = "Who holds each ION role, verified from the caller's Google-signed token (shared/roles.py): viewer (dashboards and GET APIs), operator (silences, incident actions, re-drive, resend; implies viewer), admin (customers, keys, erasure; implies operator). `global` holds everywhere; `functions.<entry point>` adds holders on one function only (e.g. the OTLP senders as operator on ingest). Members are user:<email>, serviceAccount:<email> or domain:<DNS name>. The scheduler, Cloud Tasks and push identities are Terraform's own accounts, added by it."
  type = object({
    global = object({
      viewer   = optional(list(string), [])
      operator = optional(list(string), [])
      admin    = optional(list(string), [])
    })
    functions = optional(map(object({
      viewer   = optional(list(string), [])
      operator = optional(list(string), [])
      admin    = optional(list(string), [])
    })), {})
  })
  validation {
    condition = alltrue([
      for member in flatten(concat(
        values(var.roles.global),
        [for function in values(var.roles.functions) : values(function)],
      )) :
      can(regex("^(user|serviceAccount):[^@\\s:,]+@[^@\\s,]+\\.[^@\\s,]+$", member)) ||
      can(regex("^domain:([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", member))
    ])
    error_message = "Each role member must be user:<email>, serviceAccount:<email> or domain:<DNS name>: a token names one principal and carries no groups, so group: members cannot be checked (allUsers never)."
  }
  validation {
    condition = alltrue([
      for name in keys(var.roles.functions) :
      contains(keys(yamldecode(file("${path.module}/../topology.yaml")).functions), name)
    ])
    error_message = "roles.functions keys must be entry points of topology.yaml (score_health, manage_alerts, ...)."
  }
  validation {
    condition     = length(var.roles.global.admin) > 0
    error_message = "roles.global.admin needs at least one member: nobody could manage customers and keys."
  }
}
