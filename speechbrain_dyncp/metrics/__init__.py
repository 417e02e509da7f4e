"""Metrics: enhancement quality and speaker-verification scoring."""
