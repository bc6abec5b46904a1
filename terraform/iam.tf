# The public function's Firestore role: read and write documents, never delete them, export,
# import or manage indexes. Firestore IAM cannot scope below a database (its conditions see the
# database, not collections), so this role plus the database condition in the function module is
# how far IAM narrows it; README: Deploy says what remains.
resource "google_project_iam_custom_role" "public_datastore" {
  role_id     = "ionOpsPublicDatastore"
  title       = "ION Ops public function Firestore access"
  description = "Get, list, create and update Firestore documents; no delete, export, import or index management."
  permissions = [
    "datastore.databases.getMetadata",
    "datastore.entities.get",
    "datastore.entities.list",
    "datastore.entities.create",
    "datastore.entities.update",
  ]
}
