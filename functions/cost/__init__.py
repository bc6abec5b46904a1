"""Cost: daily snapshots per service, SKU, region, request and customer; the month-end
forecast, anomalies, budget crossings and recommendations."""
