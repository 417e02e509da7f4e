"""SpeechBrain ``Pretrained`` interfaces for speechbrain-dyncp models."""
