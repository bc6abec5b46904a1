# Memorystore for Redis: the L2 cache and the shared rate-limit counters of `route` (without it
# each instance counts alone). Reached only from the private network; AUTH on and TLS in transit.
# The AUTH string never appears in an environment variable: REDIS_URL (which carries it) is a
# Secret Manager secret, read only by the functions in var.redis_functions.

resource "google_redis_instance" "cache" {
  name                    = "ion-ops-cache"
  region                  = var.region
  tier                    = var.redis.tier
  memory_size_gb          = var.redis.memory_size_gb
  redis_version           = "REDIS_7_2"
  authorized_network      = google_compute_network.private.id
  connect_mode            = "DIRECT_PEERING"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  # A cache: losing it costs misses, not data; evict the least recently used keys when full.
  redis_configs = {
    maxmemory-policy = "allkeys-lru"
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "redis_url" {
  secret_id = "redis-url"
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

# rediss:// with the AUTH string. The server CA is per instance, so verifying the chain against it
# (REDIS_CA_CERT) identifies this instance; its certificate names no host, so no hostname check.
resource "google_secret_manager_secret_version" "redis_url" {
  secret      = google_secret_manager_secret.redis_url.id
  secret_data = "rediss://:${urlencode(google_redis_instance.cache.auth_string)}@${google_redis_instance.cache.host}:${google_redis_instance.cache.port}/0?ssl_cert_reqs=required&ssl_check_hostname=false"
}
