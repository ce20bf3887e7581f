"""Pulumi program of the COVID-19 case-ingestion system (see infra/__main__.py)."""
