"""Dashboards, alert rules and the Prometheus summary of the two ingestion paths."""
