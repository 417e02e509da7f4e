"""Training objectives of speechbrain-dyncp."""
