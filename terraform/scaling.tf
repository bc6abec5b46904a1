# adjust_scaling's access to the services it scales (var.scaling_targets), bound on each service
# and never project-wide: it reads and updates their scaling and nothing else, and it acts as
# each service's runtime account, which a Cloud Run service update requires.

locals {
  scaling_identity = "serviceAccount:${module.function["adjust_scaling"].service_account}"
  scaling_projects = toset([for target in var.scaling_targets : target.project])
  # The services' project, when it is not this one: the collector reads their metrics there.
  serving_project = var.scaling_targets[0].project
}

# run.services.get and run.services.update only: roles/run.developer would also let it delete the
# service or change its code, IAM-free settings and traffic.
resource "google_project_iam_custom_role" "scaling_updater" {
  for_each    = local.scaling_projects
  project     = each.value
  role_id     = "ionOpsScalingUpdater"
  title       = "ION Ops scaling: read and update a Cloud Run service"
  description = "Read a Cloud Run service and update it (adjust_scaling sets its min and max instances)."
  permissions = ["run.services.get", "run.services.update"]
}

resource "google_cloud_run_v2_service_iam_member" "scaling_updater" {
  for_each = { for target in var.scaling_targets : "${target.project}/${target.region}/${target.service}" => target }
  project  = each.value.project
  location = each.value.region
  name     = each.value.service
  role     = google_project_iam_custom_role.scaling_updater[each.value.project].id
  member   = local.scaling_identity
}

resource "google_service_account_iam_member" "scaling_act_as" {
  for_each           = { for target in var.scaling_targets : "${target.project}/${target.service_account}" => target... }
  service_account_id = "projects/${each.value[0].project}/serviceAccounts/${each.value[0].service_account}"
  role               = "roles/iam.serviceAccountUser"
  member             = local.scaling_identity
}

# ingest's collector reads the services' metrics (Cloud Monitoring's lowest grant level is the
# project); in this project topology.yaml already grants it.
resource "google_project_iam_member" "collector_serving_project" {
  count   = local.serving_project == var.project_id ? 0 : 1
  project = local.serving_project
  role    = "roles/monitoring.viewer"
  member  = "serviceAccount:${module.function["ingest"].service_account}"
}

# A service update answers a long-running operation, and adjust_scaling waits for it (GetOperation):
# run.operations.get, which IAM checks on the project, operations not being under the service.
# Found by the permission check (devtools/permissions.py) from adjust_scaling's recorded calls.
resource "google_project_iam_custom_role" "scaling_operations" {
  for_each    = local.scaling_projects
  project     = each.value
  role_id     = "ionOpsScalingOperations"
  title       = "ION Ops scaling: wait for a Cloud Run service update"
  description = "Read Cloud Run long-running operations (adjust_scaling waits for its service updates)."
  permissions = ["run.operations.get"]
}

resource "google_project_iam_member" "scaling_operations" {
  for_each = local.scaling_projects
  project  = each.value
  role     = google_project_iam_custom_role.scaling_operations[each.value].id
  member   = local.scaling_identity
}
