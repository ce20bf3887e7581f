"""Code shared by the case-ingestion services."""
