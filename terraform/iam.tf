# The public function's Firestore role: read and write documents, never delete them, export,
# import or manage indexes. Firestore IAM cannot scope below a database (its conditions see the
# database, not collections), so this role plus the database condition in the function module is
# how far IAM narrows it; README: Deploy says what remains.
resource "google_project_iam_custom_role" "public_datastore" {
  role_id     = "ionOpsPublicDatastore"
  title       = "ION Ops public function Firestore access"
  description = "Transactions; get, list, create and update Firestore documents; no delete, export, import or index management."
  # databases.get is what Firestore checks for BeginTransaction and Rollback (every transaction,
  # e.g. POST /v2/feedback); getMetadata (reading the database resource) no call of route needs.
  # Both proved from route's recorded calls (devtools/permissions.py).
  permissions = [
    "datastore.databases.get",
    "datastore.entities.get",
    "datastore.entities.list",
    "datastore.entities.create",
    "datastore.entities.update",
  ]
}
