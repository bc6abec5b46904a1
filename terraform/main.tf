# ION Ops on Google Cloud: every function, topic, push subscription and schedule comes from
# ../topology.yaml, the same file `make run` reads, so the two cannot drift apart.

locals {
  topology = yamldecode(file("${path.module}/../topology.yaml"))
  # try(), not coalesce(): coalesce needs its arguments to share one type, and an object with
  # attributes is not the type of {} (a plan would fail on it).
  functions = try(local.topology.functions, {})
  topics    = try(local.topology.topics, {})
  schedules = try(local.topology.schedules, {})
  ttl       = try(local.topology.ttl_policies, [])
  no_index  = try(local.topology.index_exemptions, [])
  composite = try(local.topology.composite_indexes, [])
  # Every topic gets a dead-letter topic; a push subscription moves a message there after
  # max_delivery_attempts, so no retry is unbounded.
  dead_letter_topics = { for name, _ in local.topics : name => "${name}-dead-letter" }
}

resource "google_project_service" "apis" {
  for_each = toset([
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "pubsub.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firestore.googleapis.com",
    "secretmanager.googleapis.com",
    "monitoring.googleapis.com",
    "iam.googleapis.com",
    "compute.googleapis.com",
    "redis.googleapis.com",
  ])
  service            = each.value
  disable_on_destroy = false
}

data "google_project" "this" {}

# --- Source: one archive of the repository's runtime code, shared by every function ----------

# Private by construction: IAM only (no ACLs) and public access refused whatever IAM says.
resource "google_storage_bucket" "sources" {
  name                        = "${var.project_id}-ion-ops-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition { age = 30 }
    action { type = "Delete" }
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action { type = "Delete" }
  }
}

data "archive_file" "source" {
  type        = "zip"
  source_dir  = "${path.module}/.."
  output_path = "${path.module}/.build/source.zip"
  excludes = [
    ".git", ".git/**", ".venv", ".venv/**", ".venv-checkov", ".venv-checkov/**", ".run", ".run/**", "terraform", "terraform/**",
    "tests", "tests/**", "bench", "bench/**", "devtools", "devtools/**", "**/__pycache__/**",
    ".ci", ".ci/**", "requirements-dev.txt", "outbox", "outbox/**",
  ]
}

resource "google_storage_bucket_object" "source" {
  # Content-addressed name: a new archive means a new object and a redeploy.
  name   = "source-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.sources.name
  source = data.archive_file.source.output_path
}

# --- Secrets ----------------------------------------------------------------------------------

resource "google_secret_manager_secret" "secrets" {
  for_each  = toset(var.secret_ids)
  secret_id = each.value
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

# --- Functions --------------------------------------------------------------------------------

# What each function is deployed with (modules/settings: no resources, so `make rehearse` renders
# the same environment offline). Settings that are attributes of resources made here come in
# `resources`; everything else derives from the variables.
locals {
  resource_settings = {
    # Fan-out's group timers (fanout_timers.tf).
    ION_FANOUT_TASKS_QUEUE           = google_cloud_tasks_queue.fanout_timers.id
    ION_FANOUT_FLUSH_URL             = local.fanout_flush_url
    ION_FANOUT_TASKS_SERVICE_ACCOUNT = google_service_account.fanout_tasks.email
    # Memorystore's per-instance server CA (public data): the client verifies the TLS chain.
    REDIS_CA_CERT = google_redis_instance.cache.server_ca_certs[0].cert
    # Who may call what (shared/roles.py): the job identities whose tokens reach their own routes,
    # and the project number of the functions' deterministic URLs (their tokens' audience).
    ION_ROLE_SCHEDULER = google_service_account.scheduler.email
    ION_ROLE_TASKS     = google_service_account.fanout_tasks.email
    ION_ROLE_PUSH      = google_service_account.push.email
    ION_PROJECT_NUMBER = data.google_project.this.number
  }
}

module "settings" {
  source              = "./modules/settings"
  project_id          = var.project_id
  region              = var.region
  functions           = local.functions
  function_env        = var.function_env
  redis_functions     = var.redis_functions
  redis_url_secret    = google_secret_manager_secret.redis_url.secret_id
  alert_channels      = var.alert_channels
  public_access       = var.public_access
  reports             = var.reports
  cost                = var.cost
  scaling_targets     = var.scaling_targets
  cloud_sql_instances = var.cloud_sql_instances
  watchdog            = var.watchdog
  roles               = var.roles
  resources           = local.resource_settings
}

module "function" {
  source   = "./modules/function"
  for_each = local.functions

  project_id      = var.project_id
  region          = var.region
  name            = replace(each.key, "_", "-")
  entry_point     = each.key
  description     = try(each.value.description, "")
  source_bucket   = google_storage_bucket.sources.name
  source_object   = google_storage_bucket_object.source.name
  public          = try(each.value.public, false)
  invokers        = concat(try(each.value.invokers, []), lookup(var.extra_invokers, each.key, []))
  memory          = try(each.value.memory, "256Mi")
  cpu             = try(each.value.cpu, "1")
  timeout_seconds = try(each.value.timeout_seconds, 60)
  min_instances   = try(each.value.min_instances, 0)
  max_instances   = try(each.value.max_instances, 10)
  concurrency     = try(each.value.concurrency, 1)
  roles           = try(each.value.roles, [])
  # A public function's Firestore role has no delete (terraform/iam.tf); every role is
  # conditioned on one database: the public route's is its own (route), so it cannot write what
  # decides paging or access (silences, keys, markers, alert states), which it only reads. The
  # public incident_webhooks acknowledges incidents in the default database (each request
  # verified by Slack's or PagerDuty's signature), without delete.
  datastore_role     = try(each.value.public, false) ? google_project_iam_custom_role.public_datastore.id : null
  firestore_database = try(each.value.firestore_database, "(default)") == "route" ? google_firestore_database.route.name : google_firestore_database.default.name
  read_databases     = lookup(local.database_readers, each.key, [])
  erase_databases    = lookup(local.database_erasers, each.key, [])
  erase_role         = google_project_iam_custom_role.erase_datastore.id
  # ingest's senders may be outside the project (var.ingest_ingress); it still requires IAM.
  ingress = each.key == "ingest" ? var.ingest_ingress : contains(keys(local.iap_functions), each.key) ? "ALLOW_INTERNAL_AND_GCLB" : "ALLOW_INTERNAL_ONLY"
  # A topic of the topology or one's dead-letter topic; topic-scoped, never project-wide.
  publishes = [
    for topic in try(each.value.publishes, []) :
    try(google_pubsub_topic.topics[topic].name, google_pubsub_topic.dead_letter[trimsuffix(topic, "-dead-letter")].name)
  ]
  secrets        = module.settings.secrets[each.key]
  vpc_network    = contains(var.redis_functions, each.key) ? google_compute_network.private.id : null
  vpc_subnetwork = contains(var.redis_functions, each.key) ? google_compute_subnetwork.functions.id : null
  env            = module.settings.env[each.key]

  receives_dead_letters = try(each.value.dead_letters, false)
  pubsub_topic          = try(each.value.topic, null)
  pubsub_topic_id       = try(google_pubsub_topic.topics[each.value.topic].id, null)
  dead_letter_topic_id  = try(google_pubsub_topic.dead_letter[each.value.topic].id, null)
  max_delivery_attempts = try(local.topics[each.value.topic].max_delivery_attempts, 10)
  ack_deadline_seconds  = try(local.topics[each.value.topic].ack_deadline_seconds, 60)
  push_service_account  = google_service_account.push.email
  scheduler_invoker     = contains([for s in values(local.schedules) : s.function], each.key) ? google_service_account.scheduler.email : null

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret.secrets,
    google_secret_manager_secret_version.redis_url,
  ]
}

# --- Pub/Sub ----------------------------------------------------------------------------------

resource "google_pubsub_topic" "topics" {
  for_each                   = local.topics
  name                       = each.key
  message_retention_duration = try(each.value.message_retention, "86400s")
  depends_on                 = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  for_each                   = local.dead_letter_topics
  name                       = each.value
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.apis]
}

# Dead letters are kept 7 days for inspection and replay.
resource "google_pubsub_subscription" "dead_letter" {
  for_each                   = local.dead_letter_topics
  name                       = "${each.value}-hold"
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  message_retention_duration = "604800s"
  expiration_policy {
    ttl = ""
  }
}

# Every dead letter is pushed to the dead-letter sink (topology: `dead_letters: true`), which
# stores it, alerts and can re-drive it. No dead-letter policy here: a message the sink cannot
# store stays on its topic (7 days) and is retried with backoff.
locals {
  dead_letter_sinks = [for name, fn in local.functions : name if try(fn.dead_letters, false)]
  dead_letter_pushes = {
    for pair in setproduct(local.dead_letter_sinks, keys(local.topics)) :
    "${pair[1]}-dead-letter-to-${pair[0]}" => { sink = pair[0], topic = pair[1] }
  }
}

resource "google_pubsub_subscription" "dead_letter_push" {
  for_each                   = local.dead_letter_pushes
  name                       = each.key
  topic                      = google_pubsub_topic.dead_letter[each.value.topic].id
  ack_deadline_seconds       = try(local.topics[each.value.topic].ack_deadline_seconds, 60)
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = "${module.function[each.value.sink].url}/projects/${var.project_id}/topics/${each.value.topic}-dead-letter"
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = module.function[each.value.sink].audience
    }
  }

  retry_policy {
    minimum_backoff = "1s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }
}

# Identity of the push subscriptions (OIDC tokens to the event functions).
resource "google_service_account" "push" {
  account_id   = "ion-ops-push"
  display_name = "ION Ops Pub/Sub push"
  depends_on   = [google_project_service.apis]
}

# Pub/Sub's service agent mints the OIDC tokens and forwards dead letters.
locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = local.dead_letter_topics
  topic    = google_pubsub_topic.dead_letter[each.key].name
  role     = "roles/pubsub.publisher"
  member   = local.pubsub_agent
}

# --- Scheduler --------------------------------------------------------------------------------

resource "google_service_account" "scheduler" {
  account_id   = "ion-ops-scheduler"
  display_name = "ION Ops Cloud Scheduler"
  depends_on   = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "jobs" {
  for_each         = local.schedules
  name             = each.key
  description      = try(each.value.description, "")
  schedule         = each.value.cron
  time_zone        = var.scheduler_time_zone_override != "" ? var.scheduler_time_zone_override : try(each.value.time_zone, "Etc/UTC")
  attempt_deadline = try(each.value.attempt_deadline, "180s")
  region           = var.region

  # The first retry waits retry_min_backoff, later ones as long or longer: with attempt_deadline
  # that covers the function's timeout (topology.yaml, checked at load), so no retry runs beside
  # the attempt it replaces, which Cloud Scheduler abandons without stopping.
  retry_config {
    retry_count          = 2
    min_backoff_duration = try(each.value.retry_min_backoff, "10s")
    max_backoff_duration = "${max(60, tonumber(trimsuffix(try(each.value.retry_min_backoff, "10s"), "s")))}s"
  }

  http_target {
    http_method = "POST"
    uri         = "${module.function[each.value.function].url}${try(each.value.path, "/")}"
    body        = base64encode(jsonencode(try(each.value.body, {})))
    headers     = { "Content-Type" = "application/json" }
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = module.function[each.value.function].audience
    }
  }
  depends_on = [google_project_service.apis]
}

# --- Firestore --------------------------------------------------------------------------------

# Point-in-time recovery keeps 7 days of versions (any minute, e.g. before a bad write); the
# daily backups keep whole-database copies for var.firestore_backup_retention.
resource "google_firestore_database" "default" {
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  deletion_policy                   = "ABANDON"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  depends_on                        = [google_project_service.apis]
}

resource "google_firestore_backup_schedule" "daily" {
  database  = google_firestore_database.default.name
  retention = var.firestore_backup_retention
  daily_recurrence {}
}

# The public route's own collections (routing_feedback, routing_feedback_stats): a database of its
# own, the only one route may write (Firestore IAM conditions see databases, not collections).
resource "google_firestore_database" "route" {
  name                              = module.settings.route_database
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  deletion_policy                   = "ABANDON"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  depends_on                        = [google_project_service.apis]
}

resource "google_firestore_backup_schedule" "route_daily" {
  database  = google_firestore_database.route.name
  retention = var.firestore_backup_retention
  daily_recurrence {}
}

locals {
  # Read-only access (roles/datastore.viewer, conditioned) beyond a function's own database:
  # route looks up customer keys (written by score_health) in the default database; score_health
  # reads routing's feedback in route's.
  database_readers = {
    route        = [google_firestore_database.default.name]
    score_health = [google_firestore_database.route.name]
  }
  # Delete only (terraform/iam.tf erase_datastore), conditioned: score_health's erasure of a
  # customer (DELETE /v1/customers/{id}, admin) removes its feedback from route's database.
  database_erasers = {
    score_health = [google_firestore_database.route.name]
  }
}

# TTL policies: Firestore deletes documents after the timestamp in `field` (within ~24 h).
resource "google_firestore_field" "ttl" {
  for_each   = { for policy in local.ttl : "${policy.collection}.${policy.field}" => policy }
  database   = google_firestore_database.default.name
  collection = each.value.collection
  field      = each.value.field
  ttl_config {}
  # TTL fields are never queried: skip their single-field indexes.
  index_config {}
}

# Fields never queried (large maps): no single-field index, so a write is not ~2,000 index writes.
resource "google_firestore_field" "no_index" {
  for_each   = { for f in local.no_index : "${f.collection}.${f.field}" => f }
  database   = google_firestore_database.default.name
  collection = each.value.collection
  field      = each.value.field
  index_config {}
}

# Composite indexes: production Firestore refuses a query that needs one not declared (the
# emulator never does; the tests check their queries against this list, shared/firestore_indexes.py).
resource "google_firestore_index" "composite" {
  for_each = {
    for index in local.composite : join(" ", concat(
      [try(index.database, "(default)"), index.collection],
      [for f in index.fields : "${f.field}:${f.order}"],
    )) => index
  }
  database    = try(each.value.database, "(default)") == "route" ? google_firestore_database.route.name : google_firestore_database.default.name
  collection  = each.value.collection
  query_scope = "COLLECTION"

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = fields.value.field
      order      = fields.value.order
    }
  }
}
