# A private network for what must not be on the internet: Memorystore for Redis, reached by the
# functions in var.redis_functions through Direct VPC egress (no connector VMs).

resource "google_compute_network" "private" {
  name                    = "ion-ops"
  auto_create_subnetworks = false
  depends_on              = [google_project_service.apis]
}

resource "google_compute_subnetwork" "functions" {
  name                     = "ion-ops-functions"
  region                   = var.region
  network                  = google_compute_network.private.id
  ip_cidr_range            = var.functions_subnet_cidr
  private_ip_google_access = true # Google APIs (Firestore, Pub/Sub) without public addresses

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Nothing enters the network from anywhere but Memorystore's peering answers (stateful replies);
# stated as a rule so the default's absence is visible and logged.
resource "google_compute_firewall" "deny_ingress" {
  name      = "ion-ops-deny-ingress"
  network   = google_compute_network.private.id
  direction = "INGRESS"
  priority  = 65000
  deny {
    protocol = "all"
  }
  source_ranges = ["0.0.0.0/0"]
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
