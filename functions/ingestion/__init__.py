"""Metric ingestion: OTLP/HTTP and Pub/Sub batches into minute and hourly rollups, the Cloud
Monitoring collector, and the query API over HTTP. See README.md next to this file."""
