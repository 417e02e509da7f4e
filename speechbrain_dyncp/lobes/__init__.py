"""Networks (SpeechBrain lobes) of speechbrain-dyncp."""
