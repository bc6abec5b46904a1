"""The metric store shared by every capability: its Firestore layout, the mergeable percentile
sketch kept per series and minute, and the query API (``shared.metrics.query.run_query``).

Ingestion (``functions/ingestion``) writes the store; alerts, dashboards, scaling, cost and reports
read it through ``run_query``.
"""
