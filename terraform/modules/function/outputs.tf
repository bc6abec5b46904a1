output "url" {
  description = "HTTPS URL of the function."
  value       = google_cloudfunctions2_function.function.service_config[0].uri
}

output "audience" {
  description = "The audience of the OIDC tokens that call it (its deterministic URL; ION_AUTH_AUDIENCES)."
  value       = local.audience
}

output "service_account" {
  value = google_service_account.function.email
}

output "service_name" {
  description = "Name of the function's Cloud Run service (IAM bindings, serverless NEGs)."
  value       = reverse(split("/", google_cloudfunctions2_function.function.service_config[0].service))[0]
}

output "push_subscription" {
  description = "Name of the event function's own push subscription (null for an HTTP function)."
  value       = local.is_event ? google_pubsub_subscription.push[0].name : null
}
