# One gen2 Cloud Function with its own least-privilege service account. Event functions are
# fed by a push subscription of their own (OIDC-authenticated, exponential backoff, dead-letter
# topic after max_delivery_attempts) at the path /projects/P/topics/T, which the entry point
# (main.py, @pubsub_push) turns into a Pub/Sub CloudEvent; an Eventarc trigger could not bound retries with a dead letter.

locals {
  is_event = var.pubsub_topic != null
  # The function's deterministic Cloud Run URL: the audience its callers' tokens name and it checks
  # (ION_AUTH_AUDIENCES, rendered by modules/settings from the same parts).
  audience = "https://${var.name}-${data.google_project.this.number}.${var.region}.run.app"
  # Firestore roles are bound per database (an IAM condition), every other role on the project.
  datastore_roles = [for role in var.roles : role if startswith(role, "roles/datastore.")]
  project_roles   = [for role in var.roles : role if !startswith(role, "roles/datastore.")]
}

resource "google_service_account" "function" {
  account_id   = substr("fn-${var.name}", 0, 30)
  display_name = "ION Ops function ${var.name}"
}

resource "google_project_iam_member" "roles" {
  for_each = toset(local.project_roles)
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.function.email}"
}

# Firestore access on the one database the function uses and no other; `datastore_role`, when
# given, replaces the topology's datastore role (the public function gets a role without delete).
resource "google_project_iam_member" "datastore" {
  count   = length(local.datastore_roles) > 0 ? 1 : 0
  project = var.project_id
  role    = coalesce(var.datastore_role, local.datastore_roles[0])
  member  = "serviceAccount:${google_service_account.function.email}"
  condition {
    title       = "only-database-${var.firestore_database}"
    description = "Firestore access limited to the database ${var.firestore_database}."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${var.firestore_database}\""
  }
}

# Read-only Firestore access to other databases, each conditioned on its database.
resource "google_project_iam_member" "datastore_read" {
  for_each = toset(var.read_databases)
  project  = var.project_id
  role     = "roles/datastore.viewer"
  member   = "serviceAccount:${google_service_account.function.email}"
  condition {
    title       = "read-only-one-database"
    description = "Firestore read access limited to the database ${each.value}."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${each.value}\""
  }
}

# Delete-only Firestore access to other databases (a customer's erasure), each conditioned.
resource "google_project_iam_member" "datastore_erase" {
  for_each = toset(var.erase_databases)
  project  = var.project_id
  role     = var.erase_role
  member   = "serviceAccount:${google_service_account.function.email}"
  condition {
    title       = "erase-one-database"
    description = "Firestore document deletion limited to the database ${each.value}."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${each.value}\""
  }
}

resource "google_pubsub_topic_iam_member" "publishes" {
  for_each = toset(var.publishes)
  topic    = each.value
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${google_service_account.function.email}"
}

resource "google_secret_manager_secret_iam_member" "secrets" {
  for_each  = var.secrets
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function.email}"
}

resource "google_cloudfunctions2_function" "function" {
  name        = var.name
  location    = var.region
  description = var.description

  build_config {
    runtime     = "python311"
    entry_point = var.entry_point
    source {
      storage_source {
        bucket = var.source_bucket
        object = var.source_object
      }
    }
  }

  service_config {
    available_memory                 = var.memory
    available_cpu                    = var.cpu
    timeout_seconds                  = var.timeout_seconds
    min_instance_count               = var.min_instances
    max_instance_count               = var.max_instances
    max_instance_request_concurrency = var.concurrency
    service_account_email            = google_service_account.function.email
    # Only the public function takes requests from the internet; every other one only from
    # the VPC, Pub/Sub push and Cloud Scheduler (and a load balancer where asked), each request
    # still needing run.invoker.
    ingress_settings               = var.public ? "ALLOW_ALL" : var.ingress
    all_traffic_on_latest_revision = true
    environment_variables          = var.env

    # Direct VPC egress (no connector) to private addresses only, e.g. Memorystore for Redis.
    direct_vpc_egress = var.vpc_subnetwork != null ? "VPC_EGRESS_PRIVATE_RANGES_ONLY" : null
    dynamic "direct_vpc_network_interface" {
      for_each = var.vpc_subnetwork != null ? [var.vpc_subnetwork] : []
      content {
        network    = var.vpc_network
        subnetwork = direct_vpc_network_interface.value
      }
    }

    dynamic "secret_environment_variables" {
      for_each = var.secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.secrets]
}

resource "google_cloud_run_service_iam_member" "public" {
  count    = var.public ? 1 : 0
  location = var.region
  service  = google_cloudfunctions2_function.function.service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_service_iam_member" "invokers" {
  for_each = toset(var.invokers)
  location = var.region
  service  = google_cloudfunctions2_function.function.service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}

resource "google_cloud_run_service_iam_member" "scheduler" {
  count    = var.scheduler_invoker != null ? 1 : 0
  location = var.region
  service  = google_cloudfunctions2_function.function.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.scheduler_invoker}"
}

resource "google_cloud_run_service_iam_member" "push" {
  count    = local.is_event || var.receives_dead_letters ? 1 : 0
  location = var.region
  service  = google_cloudfunctions2_function.function.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.push_service_account}"
}

resource "google_pubsub_subscription" "push" {
  count                = local.is_event ? 1 : 0
  name                 = "${var.pubsub_topic}-to-${var.entry_point}"
  topic                = var.pubsub_topic_id
  ack_deadline_seconds = var.ack_deadline_seconds

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.function.service_config[0].uri}/projects/${var.project_id}/topics/${var.pubsub_topic}"
    oidc_token {
      service_account_email = var.push_service_account
      audience              = local.audience
    }
  }

  retry_policy {
    minimum_backoff = "1s"
    maximum_backoff = "60s"
  }

  dead_letter_policy {
    dead_letter_topic     = var.dead_letter_topic_id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }
}

# The Pub/Sub service agent acknowledges dead-lettered messages on this subscription.
resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  count        = local.is_event ? 1 : 0
  subscription = google_pubsub_subscription.push[0].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

data "google_project" "this" {
  project_id = var.project_id
}
