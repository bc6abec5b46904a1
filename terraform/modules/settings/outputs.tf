output "env" {
  description = "Entry point => the plain environment its function is deployed with."
  value       = local.env
}

output "secrets" {
  description = "Entry point => environment variable => Secret Manager secret id (latest version)."
  value       = local.secrets
}
