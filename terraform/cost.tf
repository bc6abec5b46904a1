# snapshot_cost's access to the billing data, bound on the resources it reads: the export dataset
# (BigQuery jobs run in this project, where topology.yaml grants bigquery.jobUser), the serving
# project's Recommender cost recommendations, and the billing account's commitment recommendations.
# The budget itself, with its Pub/Sub notifications to snapshot_cost_budget.

locals {
  cost_identity       = "serviceAccount:${module.function["snapshot_cost"].service_account}"
  billing_export      = split(".", var.cost.billing_export_table)
  billing_export_path = "projects/${local.billing_export[0]}/datasets/${local.billing_export[1]}"
}

resource "google_project_service" "billing_apis" {
  for_each           = toset(["bigquery.googleapis.com", "recommender.googleapis.com", "billingbudgets.googleapis.com"])
  service            = each.value
  disable_on_destroy = false
}

resource "google_bigquery_dataset_iam_member" "billing_export_reader" {
  project    = local.billing_export[0]
  dataset_id = local.billing_export[1]
  role       = "roles/bigquery.dataViewer"
  member     = local.cost_identity
}

# Listing Cloud Run cost and Cloud SQL idle/overprovisioned recommendations, nothing else.
resource "google_project_iam_custom_role" "cost_recommendations" {
  project     = local.serving_project
  role_id     = "ionOpsCostRecommendations"
  title       = "ION Ops cost: list cost recommendations"
  description = "List the Cloud Run and Cloud SQL cost recommendations snapshot_cost reports."
  permissions = [
    "recommender.runServiceCostRecommendations.list",
    "recommender.cloudsqlIdleInstanceRecommendations.list",
    "recommender.cloudsqlOverprovisionedInstanceRecommendations.list",
  ]
}

resource "google_project_iam_member" "cost_recommendations" {
  project = local.serving_project
  role    = google_project_iam_custom_role.cost_recommendations.id
  member  = local.cost_identity
}

# Spend-based commitment recommendations live on the billing account.
resource "google_billing_account_iam_member" "cost_commitments" {
  billing_account_id = var.cost.billing_account
  role               = "roles/recommender.billingAccountCudViewer"
  member             = local.cost_identity
}

data "google_project" "serving" {
  project_id = local.serving_project
}

# The monthly budget on ION's spend (this project and the serving project), in the billing
# account's currency. Every update (several a day) goes to topic budget-notifications;
# snapshot_cost_budget announces each threshold crossing once per month and budget.
resource "google_billing_budget" "monthly" {
  count           = var.cost.create_budget ? 1 : 0
  billing_account = var.cost.billing_account
  display_name    = "ION Ops monthly budget"

  budget_filter {
    # The projects snapshot_cost counts (ION_COST_PROJECTS), so the budget's costAmount and the
    # export's month to date reconcile.
    projects = distinct([
      "projects/${data.google_project.this.number}",
      "projects/${data.google_project.serving.number}",
    ])
    calendar_period        = "MONTH"
    credit_types_treatment = "INCLUDE_ALL_CREDITS"
  }

  amount {
    specified_amount {
      currency_code = var.cost.currency
      units         = tostring(var.cost.budget_amount)
    }
  }

  dynamic "threshold_rules" {
    for_each = var.cost.budget_thresholds
    content {
      threshold_percent = threshold_rules.value
      spend_basis       = "CURRENT_SPEND"
    }
  }
  threshold_rules {
    threshold_percent = 1.0
    spend_basis       = "FORECASTED_SPEND"
  }

  all_updates_rule {
    pubsub_topic   = google_pubsub_topic.topics["budget-notifications"].id
    schema_version = "1.0"
  }
  depends_on = [google_project_service.billing_apis]
}

# Cloud Billing publishes budget notifications as this Google-managed account.
resource "google_pubsub_topic_iam_member" "budget_publisher" {
  count  = var.cost.create_budget ? 1 : 0
  topic  = google_pubsub_topic.topics["budget-notifications"].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:billing-budget-alert@system.gserviceaccount.com"
}
