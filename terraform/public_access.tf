# How people open what they are sent (dashboards, reports, silences, dead letters, the cost,
# scaling, alert and customer-health pages): one external HTTPS load balancer with
# Identity-Aware Proxy in front of the functions whose `public_paths` topology.yaml declares.
#
#   https://<domain>/<path> -> forwarding rule :443 -> target HTTPS proxy (managed certificate)
#     -> URL map (a path rule per declared path) -> backend service with IAP
#     -> serverless NEG -> the function's Cloud Run service
#
# IAP signs people in with their Google identity and lets through only var.public_access.members
# (roles/iap.httpsResourceAccessor on each backend service); it then calls the function as the IAP
# service agent, which holds run.invoker on those functions' services only. The functions keep
# IAM-only invocation and take ingress from the load balancer (ALLOW_INTERNAL_AND_GCLB, main.tf);
# every other function stays internal. Port 80 only redirects to https.


locals {
  # The functions people open, with the paths each serves them (topology.yaml `public_paths`,
  # checked at load by shared/topology.py: under /v1/ or /dashboards, no path claimed twice).
  iap_functions = { for name, fn in local.functions : name => fn if length(try(fn.public_paths, [])) > 0 }
  # The link base of every link in a notification, report or dashboard (modules/settings derives
  # the functions' link settings from the same domain).
  public_base_url = "https://${var.public_access.domain}"
  dashboard_path  = "/dashboards/overview"
  iap_accessors = {
    for pair in setproduct(keys(local.iap_functions), toset(var.public_access.members)) :
    "${pair[0]} ${pair[1]}" => { function = pair[0], member = pair[1] }
  }
}

resource "google_project_service" "iap" {
  service            = "iap.googleapis.com"
  disable_on_destroy = false
}

# IAP's service agent (service-<project number>@gcp-sa-iap.iam.gserviceaccount.com), created now
# rather than at IAP's first use so that its run.invoker bindings below can be made.
# google_project_service_identity exists in the google-beta provider only.
resource "google_project_service_identity" "iap" {
  provider   = google-beta
  service    = "iap.googleapis.com"
  depends_on = [google_project_service.iap]
}

# --- Backends: one serverless NEG and one IAP backend service per function --------------------

# A gen2 function is a Cloud Run service (same name, made by the Cloud Functions API), so its NEG
# takes the `cloud_run` form: the serverless NEG types are Cloud Run (Cloud Run services and Cloud
# Run functions, formerly Cloud Functions 2nd gen), App Engine, and Cloud Functions, which serves
# 1st gen functions only.
resource "google_compute_region_network_endpoint_group" "functions" {
  for_each              = local.iap_functions
  name                  = "ion-ops-${replace(each.key, "_", "-")}"
  region                = var.region
  network_endpoint_type = "SERVERLESS"
  cloud_run {
    service = module.function[each.key].service_name
  }
  depends_on = [google_project_service.apis]
}

resource "google_compute_backend_service" "functions" {
  for_each              = local.iap_functions
  name                  = "ion-ops-${replace(each.key, "_", "-")}"
  description           = "IAP in front of ${each.key}: ${join(", ", each.value.public_paths)}"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  # Protocol, port, timeout and health checks left unset, as for any serverless NEG backend.
  backend {
    group = google_compute_region_network_endpoint_group.functions[each.key].id
  }
  # Google-managed OAuth client: people of the project's organization sign in with a browser.
  iap {
    enabled = true
  }
  log_config {
    enable      = true
    sample_rate = 1.0
  }
  depends_on = [google_project_service.iap]
}

# Who may open them: the named members on each backend service, never on the project.
resource "google_iap_web_backend_service_iam_member" "people" {
  for_each            = local.iap_accessors
  web_backend_service = google_compute_backend_service.functions[each.value.function].name
  role                = "roles/iap.httpsResourceAccessor"
  member              = each.value.member
}

# IAP calls the function as its service agent: run.invoker on each exposed function's service.
resource "google_cloud_run_service_iam_member" "iap_invoker" {
  for_each = local.iap_functions
  location = var.region
  service  = module.function[each.key].service_name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_project_service_identity.iap.email}"
}

# --- Front end: URL map, certificate, proxies, address, forwarding rules ------------------------

resource "google_compute_url_map" "public" {
  name        = "ion-ops-public"
  description = "The paths people open (topology.yaml public_paths), each to its function."
  # Any other host: the dashboards on the domain.
  default_url_redirect {
    host_redirect          = var.public_access.domain
    path_redirect          = local.dashboard_path
    https_redirect         = true
    redirect_response_code = "FOUND"
    strip_query            = true
  }
  host_rule {
    hosts        = [var.public_access.domain]
    path_matcher = "functions"
  }
  path_matcher {
    name = "functions"
    # Any other path (/, /health, job and push paths) reaches no function: the dashboards instead.
    default_url_redirect {
      path_redirect          = local.dashboard_path
      redirect_response_code = "FOUND"
      strip_query            = true
    }
    dynamic "path_rule" {
      for_each = local.iap_functions
      content {
        paths   = path_rule.value.public_paths
        service = google_compute_backend_service.functions[path_rule.key].id
      }
    }
  }
}

# Google-managed certificate for the domain: issued once the A record points at public_ip. Named
# after the domain so a new domain gets its certificate before the old one goes.
resource "google_compute_managed_ssl_certificate" "public" {
  name = "ion-ops-public-${substr(sha256(var.public_access.domain), 0, 8)}"
  managed {
    domains = [var.public_access.domain]
  }
  lifecycle {
    create_before_destroy = true
  }
  depends_on = [google_project_service.apis]
}

resource "google_compute_ssl_policy" "public" {
  name            = "ion-ops-public"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
  depends_on      = [google_project_service.apis]
}

resource "google_compute_target_https_proxy" "public" {
  name             = "ion-ops-public"
  url_map          = google_compute_url_map.public.id
  ssl_certificates = [google_compute_managed_ssl_certificate.public.id]
  ssl_policy       = google_compute_ssl_policy.public.id
}

resource "google_compute_global_address" "public" {
  name       = "ion-ops-public"
  depends_on = [google_project_service.apis]
}

resource "google_compute_global_forwarding_rule" "https" {
  name                  = "ion-ops-public-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.public.id
  port_range            = "443"
  target                = google_compute_target_https_proxy.public.id
}

# Port 80 on the same address: a redirect to https, nothing else.
resource "google_compute_url_map" "http_redirect" {
  name = "ion-ops-public-http"
  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
  depends_on = [google_project_service.apis]
}

resource "google_compute_target_http_proxy" "http_redirect" {
  name    = "ion-ops-public-http"
  url_map = google_compute_url_map.http_redirect.id
}

resource "google_compute_global_forwarding_rule" "http" {
  name                  = "ion-ops-public-http"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.public.id
  port_range            = "80"
  target                = google_compute_target_http_proxy.http_redirect.id
}

output "public_ip" {
  description = "The load balancer's address: create the DNS A record <public_access.domain> -> this IP."
  value       = google_compute_global_address.public.address
}

output "public_base_url" {
  description = "The base of every link people open (dashboards at <base>/dashboards/overview)."
  value       = local.public_base_url
}
