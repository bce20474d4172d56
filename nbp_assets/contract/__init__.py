"""Data contracts: pandera models for the upstream inputs and for every asset."""
