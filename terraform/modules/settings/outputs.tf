output "env" {
  description = "Entry point => the plain environment its function is deployed with."
  value       = local.env
}

output "route_database" {
  description = "The Firestore database of the public route's own collections."
  value       = local.route_database
}

output "secrets" {
  description = "Entry point => environment variable => Secret Manager secret id (latest version)."
  value       = local.secrets
}
