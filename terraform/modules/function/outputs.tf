output "url" {
  description = "HTTPS URL of the function."
  value       = google_cloudfunctions2_function.function.service_config[0].uri
}

output "service_account" {
  value = google_service_account.function.email
}
