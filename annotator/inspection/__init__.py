"""Inspection: looking at what the models said, one photo at a time (`annotate show`) or a whole run."""
