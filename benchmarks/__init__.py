"""Benchmarks of the weekly job and the offer stream: commands that print figures (docs/performance.md). Not part of the package; tests do not import them."""
