# What each function is given when deployed: its plain settings (environment) and its secrets.
# No resource and no provider here, on purpose: the deployment rehearsal (`make rehearse`) calls
# this same module with the same variables through the terraform CLI offline, so the environment
# it starts each function with is the one Terraform renders, not a copy of it.

locals {
  # Every plain setting a function may take with `settings_from` in topology.yaml. A name a
  # function asks for that is missing here fails the plan (an index into a map without the key).
  operator_settings = {
    SLACK_CHANNEL    = var.alert_channels.slack_channel
    SMTP_HOST        = var.alert_channels.smtp_host
    SMTP_PORT        = tostring(var.alert_channels.smtp_port)
    SMTP_STARTTLS    = var.alert_channels.smtp_port == 465 ? "false" : "true"
    SMTP_USER        = var.alert_channels.smtp_user
    ALERT_EMAIL_FROM = var.alert_channels.alert_email_from
    ALERT_EMAIL_TO   = var.alert_channels.alert_email_to
    # Links people open: the public base URL of the load balancer.
    ION_FANOUT_PUBLIC_URL  = local.public_base_url
    ION_DASHBOARD_URL      = "${local.public_base_url}/dashboards/overview"
    ION_REPORTS_PUBLIC_URL = local.public_base_url
    ION_HEALTH_PUBLIC_URL  = local.public_base_url
    ION_DEADLETTERS_URL    = local.public_base_url
    ION_COST_DASHBOARD_URL = "${local.public_base_url}/dashboards/overview"
    # Reports: sender and one recipient list per audience.
    ION_REPORTS_FROM           = var.reports.mail_from
    ION_REPORTS_TIME_ZONE      = var.reports.time_zone
    ION_REPORTS_TO_ENGINEERING = join(",", var.reports.recipients.engineering)
    ION_REPORTS_TO_LEADERSHIP  = join(",", var.reports.recipients.leadership)
    ION_REPORTS_TO_SUPPORT     = join(",", var.reports.recipients.support)
    ION_REPORTS_TO_OPERATIONS  = join(",", var.reports.recipients.operations)
    # The customer success and finance audiences (the seeds' CS and financial reports).
    ION_REPORTS_TO_CUSTOMER_SUCCESS = join(",", var.reports.recipients.customer_success)
    ION_REPORTS_TO_FINANCE          = join(",", var.reports.recipients.finance)
    # Cost: the billing export, queried by jobs that run in this project (where the function may
    # run jobs), in the export dataset's location; of ION's projects only (the export holds every
    # project the billing account pays for): this one and the serving project.
    ION_COST_BILLING_TABLE         = var.cost.billing_export_table
    ION_COST_PROJECTS              = join(",", distinct(concat([var.project_id], [for t in var.scaling_targets : t.project])))
    ION_COST_BIGQUERY_PROJECT      = var.project_id
    ION_COST_BIGQUERY_LOCATION     = var.cost.billing_export_location
    ION_COST_BILLING_ACCOUNT       = var.cost.billing_account
    ION_COST_BUDGET                = tostring(var.cost.budget_amount)
    ION_COST_TARGET                = tostring(var.cost.target_amount)
    ION_COST_CURRENCY              = var.cost.currency
    ION_COST_RECOMMENDER_PROJECT   = local.serving_project
    ION_COST_RECOMMENDER_LOCATIONS = join(",", distinct([for t in var.scaling_targets : t.region]))
    # Scaling: the Cloud Run services it sets min/max instances of (full resource names).
    ION_SCALING_TARGETS = join(",", [
      for t in var.scaling_targets : "projects/${t.project}/locations/${t.region}/services/${t.service}"
    ])
    # Ingestion's collector reads those services' and the Cloud SQL instances' metrics.
    ION_COLLECTOR_PROJECT       = local.serving_project
    ION_COLLECTOR_RUN_SERVICES  = join(",", distinct([for t in var.scaling_targets : t.service]))
    ION_COLLECTOR_SQL_INSTANCES = join(",", var.cloud_sql_instances)
    # Alerts: the external dead man's switch each evaluation cycle pings.
    ION_ALERTS_HEARTBEAT_URL = var.watchdog.heartbeat_url
  }
  serving_project = var.scaling_targets[0].project
  public_base_url = "https://${var.public_access.domain}"
  settings        = merge(local.operator_settings, var.resources)

  # Who may call what (shared/roles.py): the role lists of var.roles (global, then the function's
  # own), the job identities Terraform creates, and the audience of the tokens a function takes:
  # its deterministic Cloud Run URL, which the scheduler's, push subscriptions' and Cloud Tasks'
  # tokens name (a function cannot be given its own generated URL: a cycle). IAP's audience names
  # the backend service, whose id also depends on the function: the project's backend services.
  route_database = "route"
  project_number = var.resources.ION_PROJECT_NUMBER
  role_members = {
    for name, _ in var.functions : name => {
      for role in ["viewer", "operator", "admin"] :
      role => join(",", distinct(concat(var.roles.global[role], try(var.roles.functions[name][role], []))))
    }
  }
  auth_env = {
    for name, fn in var.functions : name => try(fn.public, false) ? {} : merge(
      { ION_AUTH_AUDIENCES = "https://${replace(name, "_", "-")}-${local.project_number}.${var.region}.run.app" },
      try(fn.trigger, "http") == "pubsub" ? { ION_ROLE_PUSH = "serviceAccount:${var.resources.ION_ROLE_PUSH}" } : {
        ION_ROLE_VIEWERS                                    = local.role_members[name].viewer
        ION_ROLE_OPERATORS                                  = local.role_members[name].operator
        ION_ROLE_ADMINS                                     = local.role_members[name].admin
        ION_ROLE_SCHEDULER                                  = "serviceAccount:${var.resources.ION_ROLE_SCHEDULER}"
        ION_ROLE_TASKS                                      = "serviceAccount:${var.resources.ION_ROLE_TASKS}"
      },
      length(try(fn.public_paths, [])) > 0 ? { ION_IAP_AUDIENCE = "/projects/${local.project_number}/global/backendServices/*" } : {},
    )
  }
  # The public route's own collections live in a database of their own; score_health reads its
  # feedback there.
  route_database_env = { for name in ["route", "score_health"] : name => { ION_ROUTE_DATABASE = local.route_database } }

  env = {
    for name, fn in var.functions : name => merge(
      var.function_env,
      try(fn.env, {}),
      { for setting in try(fn.settings_from, []) : setting => local.settings[setting] },
      contains(var.redis_functions, name) ? { REDIS_CA_CERT = var.resources.REDIS_CA_CERT } : {},
      local.auth_env[name],
      lookup(local.route_database_env, name, {}),
      {
        GOOGLE_CLOUD_PROJECT = var.project_id
        FUNCTION_REGION      = var.region
      },
    )
  }
  secrets = {
    for name, fn in var.functions : name => merge(
      try(fn.secrets, {}),
      contains(var.redis_functions, name) ? { REDIS_URL = var.redis_url_secret } : {},
    )
  }
}
