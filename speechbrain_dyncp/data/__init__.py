"""Data: embedded corpus synthesiser, audio reading and dataset preparation."""
