"""Metrics of enhancement quality (speaker-verification metrics: :mod:`speechbrain_dyncp.verification.metrics`)."""
