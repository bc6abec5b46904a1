"""Scaling: the persona service's Cloud Run min and max instances per region, set ahead of
the forecast load."""
