"""Outcome monitoring and drift of the weekly model: offer_outcomes and model_drift."""
