output "function_urls" {
  description = "URL of every deployed function, by entry point."
  value       = { for name, fn in module.function : name => fn.url }
}

output "topics" {
  description = "Pub/Sub topics and their dead-letter topics."
  value       = { for name, topic in google_pubsub_topic.topics : name => { topic = topic.id, dead_letter = google_pubsub_topic.dead_letter[name].id } }
}

output "scheduler_jobs" {
  description = "Cloud Scheduler jobs and their cron schedules."
  value       = { for name, job in google_cloud_scheduler_job.jobs : name => job.schedule }
}
