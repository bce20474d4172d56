"""Dagster assets and checks: thin wiring of the model to storage."""
