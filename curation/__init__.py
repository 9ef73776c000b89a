"""Curation: ingest and validation, de-duplication, lineage-grouped splits, leakage removal."""
