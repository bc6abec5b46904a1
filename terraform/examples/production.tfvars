# The deployment's variables, as the README's Deploy section shows them: copy this file to
# terraform/ion.auto.tfvars and put your own values in. `make rehearse` starts every function with
# what Terraform renders from this very file, so the example is known to start.
project_id = "ion-ops-prod"
region     = "us-central1"

alert_channels = {
  slack_channel    = "C0123ALERTS" # a channel id, not a name
  smtp_host        = "smtp-relay.example.com"
  smtp_port        = 587 # 587 STARTTLS, 465 TLS
  smtp_user        = "ion-ops@example.com"
  alert_email_from = "ion-ops@example.com"
  alert_email_to   = "oncall@example.com" # comma-separated
}

# The load balancer with IAP in front of what people open (README: Deploy, "Opening dashboards
# and links"): every link in a notification or report is https://<domain>/...
public_access = {
  domain  = "ops.example.com"
  members = ["group:ion-ops-team@example.com"]
}

# Who may do what through the functions' APIs (README: "Who may call what"): each caller's
# Google-signed token names them. viewer < operator < admin; per function adds holders there only.
roles = {
  global = {
    viewer   = ["domain:example.com"]
    operator = ["user:oncall-lead@example.com", "user:sre@example.com"]
    admin    = ["user:ion-ops-admin@example.com"]
  }
  functions = {
    # The persona service's OTLP exporter (an extra invoker of ingest) posts metrics; scaling follows
    # each region's last minute from them: export every 10 s (OTEL_METRIC_EXPORT_INTERVAL=10000).
    ingest = { operator = ["serviceAccount:persona-router@ion-mentoring-prod.iam.gserviceaccount.com"] }
  }
}

reports = {
  mail_from = "ion-ops-reports@example.com"
  time_zone = "America/New_York"
  recipients = {
    engineering      = ["engineering@example.com"]
    leadership       = ["leadership@example.com"]
    support          = ["support@example.com"]
    operations       = ["ion-ops-team@example.com"]
    customer_success = ["customer-success@example.com"]
    finance          = ["finance@example.com"]
  }
}

cost = {
  billing_export_table    = "ion-billing-admin.billing_export.gcp_billing_export_v1_0123AB_4567CD_89EF01"
  billing_export_location = "US"
  billing_account         = "0123AB-4567CD-89EF01"
  budget_amount           = 3000
  target_amount           = 1800
  currency                = "USD"
}

# The persona service's Cloud Run services that adjust_scaling sizes, one per region of
# functions/scaling/rules.yaml.
scaling_targets = [
  { project = "ion-mentoring-prod", region = "us-central1", service = "persona-router", service_account = "persona-router@ion-mentoring-prod.iam.gserviceaccount.com" },
  { project = "ion-mentoring-prod", region = "europe-west1", service = "persona-router", service_account = "persona-router@ion-mentoring-prod.iam.gserviceaccount.com" },
  { project = "ion-mentoring-prod", region = "asia-southeast1", service = "persona-router", service_account = "persona-router@ion-mentoring-prod.iam.gserviceaccount.com" },
]

cloud_sql_instances = ["ion-mentoring-db"]

# Who is paged when ION itself is down, by Cloud Monitoring and not through ION (README: Deploy,
# "What pages whom when ION itself is down"). The PagerDuty integration key goes in the Secret
# Manager secret watchdog-pagerduty-key (step 1); heartbeat_url is the external dead man's switch
# every evaluation cycle pings (https, e.g. a healthchecks.io check set to a 1-minute period).
watchdog = {
  email         = "ion-ops-watchdog@example.com"
  heartbeat_url = "https://hc-ping.com/00000000-0000-4000-8000-000000000000"
}
