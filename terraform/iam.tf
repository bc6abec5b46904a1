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
  depends_on = [google_project_service.apis]
}

# Erasing a customer's data in a database a function otherwise only reads (score_health in route's:
# the customer's feedback): delete documents, nothing else; bound per database by a condition.
resource "google_project_iam_custom_role" "erase_datastore" {
  role_id     = "ionOpsEraseDatastore"
  title       = "ION Ops erasure in another Firestore database"
  description = "Delete Firestore documents (a customer's erasure); reading is roles/datastore.viewer's."
  permissions = ["datastore.entities.delete"]
  depends_on  = [google_project_service.apis]
}
